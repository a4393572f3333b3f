//! NVSentinel janitor's `RebootNode` (`janitor.dgxc.nvidia.com/v1alpha1`, cluster-scoped,
//! plural `rebootnodes`) as a small typed resource, usable with the double's helpers and with
//! `kube::Api<RebootNode>`. Shape: `janitor/api/v1alpha1/rebootnode_types.go`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RebootNode {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "apiVersion"
    )]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: RebootNodeSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RebootNodeStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RebootNodeSpec {
    pub node_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RebootNodeStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl RebootNode {
    pub fn new(name: &str, node: &str) -> RebootNode {
        RebootNode {
            api_version: Some(<Self as k8s_openapi::Resource>::API_VERSION.into()),
            kind: Some(<Self as k8s_openapi::Resource>::KIND.into()),
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: RebootNodeSpec {
                node_name: node.into(),
                force: None,
            },
            status: None,
        }
    }
}

impl k8s_openapi::Resource for RebootNode {
    const API_VERSION: &'static str = "janitor.dgxc.nvidia.com/v1alpha1";
    const GROUP: &'static str = "janitor.dgxc.nvidia.com";
    const KIND: &'static str = "RebootNode";
    const VERSION: &'static str = "v1alpha1";
    const URL_PATH_SEGMENT: &'static str = "rebootnodes";
    type Scope = k8s_openapi::ClusterResourceScope;
}

impl k8s_openapi::ListableResource for RebootNode {
    const LIST_KIND: &'static str = "RebootNodeList";
}

impl k8s_openapi::Metadata for RebootNode {
    type Ty = ObjectMeta;
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}
