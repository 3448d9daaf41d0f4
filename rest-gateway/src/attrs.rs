//! Reading Neutron request bodies attribute by attribute (every attribute is
//! taken exactly once; what is left over is refused), and rendering helpers.

use axum::http::StatusCode;
use serde_json::{Map, Value};

use crate::error::RestError;

/// The attributes of one resource in a request body.
#[derive(Debug)]
pub(crate) struct Attrs {
    map: Map<String, Value>,
}

/// 400 `InvalidInput` naming the attribute (Neutron's wording).
pub(crate) fn wrong_type(name: &str, value: &Value, what: &str) -> RestError {
    RestError::new(
        StatusCode::BAD_REQUEST,
        "InvalidInput",
        format!("Invalid input for {name}. Reason: '{value}' is not {what}."),
    )
}

impl Attrs {
    pub(crate) fn new(map: Map<String, Value>) -> Attrs {
        Attrs { map }
    }

    /// Removes and returns an attribute (JSON `null` counts as given).
    pub(crate) fn take(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name)
    }

    /// A copy of an attribute, left in place.
    pub(crate) fn peek(&self, name: &str) -> Option<Value> {
        self.map.get(name).cloned()
    }

    /// Sets an attribute (the gateway's own, e.g. the resolved project).
    pub(crate) fn set(&mut self, name: &str, value: Value) {
        self.map.insert(name.to_string(), value);
    }

    /// A string attribute; `null` is refused.
    pub(crate) fn string(&mut self, name: &str) -> Result<Option<String>, RestError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(wrong_type(name, &other, "a valid string")),
        }
    }

    /// A string attribute where `null` means empty.
    pub(crate) fn nullable_string(&mut self, name: &str) -> Result<String, RestError> {
        match self.peek(name) {
            Some(Value::Null) => {
                self.take(name);
                Ok(String::new())
            }
            _ => Ok(self.string(name)?.unwrap_or_default()),
        }
    }

    /// A string attribute of an update where `null` clears it: unset is
    /// `None`, `null` `Some("")`.
    pub(crate) fn nullable_update(&mut self, name: &str) -> Result<Option<String>, RestError> {
        match self.peek(name) {
            Some(Value::Null) => {
                self.take(name);
                Ok(Some(String::new()))
            }
            _ => self.string(name),
        }
    }

    /// A required string attribute.
    pub(crate) fn required(&mut self, name: &str) -> Result<String, RestError> {
        self.string(name)?.ok_or_else(|| {
            RestError::bad_request(format!(
                "Failed to parse request. Required attribute '{name}' not specified"
            ))
        })
    }

    /// A boolean attribute (Neutron also accepts "true"/"false" strings).
    pub(crate) fn boolean(&mut self, name: &str) -> Result<Option<bool>, RestError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(other) => Err(wrong_type(name, &other, "a valid boolean")),
        }
    }

    /// A non-negative integer attribute (Neutron also accepts decimal
    /// strings, which the `openstack` CLI sends).
    pub(crate) fn u32(&mut self, name: &str) -> Result<Option<u32>, RestError> {
        match self.take(name) {
            None => Ok(None),
            Some(v) => {
                let n = match &v {
                    Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                        s.parse::<u32>().ok()
                    }
                    other => other.as_u64().and_then(|n| u32::try_from(n).ok()),
                };
                match n {
                    Some(n) => Ok(Some(n)),
                    None => Err(wrong_type(name, &v, "a valid integer")),
                }
            }
        }
    }

    /// A list of strings.
    pub(crate) fn strings(&mut self, name: &str) -> Result<Option<Vec<String>>, RestError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    other => Err(wrong_type(name, &other, "a valid string")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(wrong_type(name, &other, "a list")),
        }
    }

    /// A list of objects, each read with `each` (which must use up its attributes).
    pub(crate) fn objects<T>(
        &mut self,
        name: &str,
        mut each: impl FnMut(&mut Attrs) -> Result<T, RestError>,
    ) -> Result<Option<Vec<T>>, RestError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let Value::Object(map) = item else {
                        return Err(wrong_type(name, &item, "a list of dictionaries"));
                    };
                    let mut attrs = Attrs::new(map);
                    out.push(each(&mut attrs)?);
                    attrs.finish_in(name)?;
                }
                Ok(Some(out))
            }
            Some(other) => Err(wrong_type(name, &other, "a list")),
        }
    }

    /// A dictionary attribute read with `each` (which must use up its
    /// attributes): `None` when absent, `Some(None)` for `null` or `{}`
    /// (Neutron's way of clearing one, e.g. `external_gateway_info`).
    pub(crate) fn object<T>(
        &mut self,
        name: &str,
        each: impl FnOnce(&mut Attrs) -> Result<T, RestError>,
    ) -> Result<Option<Option<T>>, RestError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::Object(map)) if map.is_empty() => Ok(Some(None)),
            Some(Value::Object(map)) => {
                let mut attrs = Attrs::new(map);
                let out = each(&mut attrs)?;
                attrs.finish_in(name)?;
                Ok(Some(Some(out)))
            }
            Some(other) => Err(wrong_type(name, &other, "a dictionary")),
        }
    }

    /// Refuses a supported-only-at-its-default attribute with another value.
    pub(crate) fn only_default(&mut self, name: &str, default: &Value) -> Result<(), RestError> {
        match self.take(name) {
            Some(v) if &v != default && !(v.is_null() && default.as_str() == Some("")) => Err(
                RestError::invalid_input(format!("'{name}' other than {default} is not supported")),
            ),
            _ => Ok(()),
        }
    }

    /// The project of a create: `project_id` and the legacy `tenant_id`, which must agree.
    pub(crate) fn project(&mut self) -> Result<Option<String>, RestError> {
        let project = self.string("project_id")?;
        let tenant = self.string("tenant_id")?;
        match (project, tenant) {
            (Some(p), Some(t)) if p != t => Err(RestError::invalid_input(
                "'project_id' and 'tenant_id' do not match",
            )),
            (p, t) => Ok(p.or(t)),
        }
    }

    /// Refuses any attribute left unread.
    pub(crate) fn finish(self) -> Result<(), RestError> {
        self.finish_in("")
    }

    /// [`Attrs::finish`] of an update body: the error names what an update
    /// may change (`updatable`).
    pub(crate) fn finish_update(self, updatable: &str) -> Result<(), RestError> {
        self.finish()
            .map_err(|e| RestError::bad_request(format!("{} (updatable: {updatable})", e.message)))
    }

    fn finish_in(self, within: &str) -> Result<(), RestError> {
        if self.map.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = self.map.keys().map(String::as_str).collect();
        let within = if within.is_empty() {
            String::new()
        } else {
            format!(" in '{within}'")
        };
        Err(RestError::bad_request(format!(
            "Unrecognized attribute(s) '{}'{within}",
            names.join(", ")
        )))
    }
}

/// Milliseconds since the epoch as ISO 8601 UTC (`2024-01-31T12:00:00Z`),
/// Neutron's format for `created_at` / `updated_at`.
pub(crate) fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian
/// calendar (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `""` → `null`, else the string.
pub(crate) fn nullable(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::String(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_matches_known_instants() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_700_000_000_123), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn integers_may_be_decimal_strings_as_the_cli_sends_them() {
        let mut a = Attrs::new(
            serde_json::json!({"a": "1400", "b": 1400, "c": "-1", "d": "1e3", "e": 1.5, "f": ""})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        assert_eq!(a.u32("a").ok().flatten(), Some(1400));
        assert_eq!(a.u32("b").ok().flatten(), Some(1400));
        for bad in ["c", "d", "e", "f"] {
            let e = a.u32(bad).err().map(|e| e.message).unwrap_or_default();
            assert!(e.contains(&format!("Invalid input for {bad}.")), "{e}");
        }
    }

    #[test]
    fn leftover_attributes_are_named() {
        let mut a = Attrs::new(
            serde_json::json!({"name": "x", "bogus": 1})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        assert_eq!(a.string("name").ok().flatten().as_deref(), Some("x"));
        let e = a.finish().err().map(|e| e.message);
        assert_eq!(e.as_deref(), Some("Unrecognized attribute(s) 'bogus'"));
    }
}
