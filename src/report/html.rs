//! placeholder
use super::model::Run;
pub fn render(_run: &Run) -> String {
    String::new()
}
