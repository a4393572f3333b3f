//! PCI addresses as the driver, sysfs, nvidia-smi and NVSentinel write them.
//!
//! The same device shows up as `0000:3b:00` (driver XID line), `0000:3b:00.0` (procfs directory),
//! `00000000:3B:00.0` (nvidia-smi) or `0001:00:00.0` (Azure's extended domains). One parsed form
//! lets all of them be compared.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PciAddress {
    pub domain: u32,
    pub bus: u8,
    pub device: u8,
    /// `None` when the text had no `.function` part (the driver's XID lines).
    pub function: Option<u8>,
}

impl PciAddress {
    pub fn new(domain: u32, bus: u8, device: u8, function: u8) -> Self {
        PciAddress {
            domain,
            bus,
            device,
            function: Some(function),
        }
    }

    /// The same physical function: a missing function counts as function 0, which is what the
    /// driver means when it leaves it out.
    pub fn same_device(&self, other: &PciAddress) -> bool {
        self.domain == other.domain
            && self.bus == other.bus
            && self.device == other.device
            && self.function.unwrap_or(0) == other.function.unwrap_or(0)
    }

    /// `00000000:3B:00.0`: 8-digit domain, upper case, with function (nvidia-smi's form).
    pub fn canonical(&self) -> String {
        format!(
            "{:08X}:{:02X}:{:02X}.{:X}",
            self.domain,
            self.bus,
            self.device,
            self.function.unwrap_or(0)
        )
    }

    /// `0000:3b:00`: what the driver prints in an XID line.
    pub fn driver(&self) -> String {
        format!("{:04x}:{:02x}:{:02x}", self.domain, self.bus, self.device)
    }

    /// `0000:3b:00.0`: the procfs/sysfs directory name (the seed's form).
    pub fn sysfs(&self) -> String {
        format!(
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain,
            self.bus,
            self.device,
            self.function.unwrap_or(0)
        )
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

impl Serialize for PciAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.canonical())
    }
}

/// Any form [`PciAddress::from_str`] reads, so a client can decode what the agent sends.
impl<'de> Deserialize<'de> for PciAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid PCI address '{input}': {reason} (expected e.g. 0000:3b:00.0, 00000000:3B:00.0 or 0000:3b:00)"
)]
pub struct PciParseError {
    pub input: String,
    pub reason: String,
}

impl FromStr for PciAddress {
    type Err = PciParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| PciParseError {
            input: s.chars().take(64).collect(),
            reason: reason.into(),
        };
        let text = s.trim();
        let (rest, function) = match text.rsplit_once('.') {
            Some((rest, f)) => {
                let f = hex_field(f, 1, "function").map_err(|r| err(&r))?;
                if f > 7 {
                    return Err(err("function must be 0-7"));
                }
                (rest, Some(f as u8))
            }
            None => (text, None),
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let (domain, bus, device) = match parts.as_slice() {
            [d, b, dev] => (hex_field(d, 8, "domain").map_err(|r| err(&r))?, *b, *dev),
            [b, dev] => (0, *b, *dev),
            _ => return Err(err("expected [domain:]bus:device[.function]")),
        };
        let bus = hex_field(bus, 2, "bus").map_err(|r| err(&r))? as u8;
        let device = hex_field(device, 2, "device").map_err(|r| err(&r))?;
        if device > 0x1f {
            return Err(err("device must be 00-1f"));
        }
        Ok(PciAddress {
            domain,
            bus,
            device: device as u8,
            function,
        })
    }
}

fn hex_field(s: &str, max_len: usize, what: &str) -> Result<u32, String> {
    if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{what} must be 1-{max_len} hex digits, got '{s}'"));
    }
    u32::from_str_radix(s, 16).map_err(|e| format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_forms_parse_to_the_same_device() {
        let forms = ["0000:3b:00.0", "0000:3B:00", "00000000:3B:00.0", "3b:00.0"];
        let first: PciAddress = forms[0].parse().unwrap();
        for f in forms {
            let p: PciAddress = f.parse().unwrap();
            assert!(p.same_device(&first), "{f}");
            assert_eq!(p.canonical(), "00000000:3B:00.0");
        }
    }

    #[test]
    fn azure_domains() {
        let p: PciAddress = "0001:00:00.0".parse().unwrap();
        assert_eq!(p.canonical(), "00000001:00:00.0");
        assert_eq!(p.driver(), "0001:00:00");
        let smi: PciAddress = "00000001:00:00.0".parse().unwrap();
        assert!(p.same_device(&smi));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "zz:00.0",
            "0000:3b:00.9",
            "0000:3b:20.0",
            "0:0:0:0",
            "123456789:00:00.0",
        ] {
            assert!(bad.parse::<PciAddress>().is_err(), "{bad}");
        }
        let e = "0000:3b:zz.0".parse::<PciAddress>().unwrap_err();
        assert!(e.to_string().contains("device"), "{e}");
    }

    #[test]
    fn renders() {
        let p = PciAddress::new(0, 0x3b, 0, 0);
        assert_eq!(p.driver(), "0000:3b:00");
        assert_eq!(p.sysfs(), "0000:3b:00.0");
    }

    #[test]
    fn another_domain_bus_device_or_function_is_another_device() {
        let p: PciAddress = "0000:3b:00.0".parse().unwrap();
        for other in [
            "0001:3b:00.0",
            "0000:3c:00.0",
            "0000:3b:01.0",
            "0000:3b:00.1",
        ] {
            assert!(!p.same_device(&other.parse().unwrap()), "{other}");
        }
        // The driver's form has no function: it means function 0.
        let driver: PciAddress = "0000:3b:00".parse().unwrap();
        assert!(driver.same_device(&p));
        assert!(!driver.same_device(&"0000:3b:00.1".parse().unwrap()));
    }

    #[test]
    fn the_highest_device_and_function_parse_and_errors_name_the_field() {
        let p: PciAddress = "0000:3b:1f.7".parse().unwrap();
        assert_eq!((p.device, p.function), (0x1f, Some(7)));
        let reason = |s: &str| s.parse::<PciAddress>().unwrap_err().reason;
        assert_eq!(
            reason("123456789:00:00.0"),
            "domain must be 1-8 hex digits, got '123456789'"
        );
        assert_eq!(
            reason("0000:zz:00.0"),
            "bus must be 1-2 hex digits, got 'zz'"
        );
        assert_eq!(reason("0000::00.0"), "bus must be 1-2 hex digits, got ''");
        assert_eq!(reason("0000:3b:00.8"), "function must be 0-7");
        assert_eq!(reason("0000:3b:20.0"), "device must be 00-1f");
    }

    #[test]
    fn displays_and_serialises_as_nvidia_smi_and_reads_any_form_back() {
        let p: PciAddress = "0000:3b:00".parse().unwrap();
        assert_eq!(p.to_string(), "00000000:3B:00.0");
        assert_eq!(serde_json::to_string(&p).unwrap(), r#""00000000:3B:00.0""#);
        let back: PciAddress = serde_json::from_str(r#""0000:3b:00""#).unwrap();
        assert_eq!(back, p);
        let err = serde_json::from_str::<PciAddress>(r#""3b""#).unwrap_err();
        assert!(
            err.to_string().contains("expected [domain:]bus:device"),
            "{err}"
        );
    }
}
