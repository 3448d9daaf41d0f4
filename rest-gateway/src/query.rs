//! List query strings: filters (repeated keys OR'd, different keys AND'd),
//! `fields`, `limit`, `marker`, and the sort/paging keys we accept.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::RestError;
use crate::limits::FILTER_VALUES_MAX;

/// Tag filters every resource accepts (comma-separated tag lists).
pub(crate) const TAG_FILTERS: [&str; 4] = ["tags", "tags-any", "not-tags", "not-tags-any"];

/// A parsed list (or show) query.
#[derive(Debug, Default)]
pub(crate) struct Query {
    /// Every `key=value` pair, in order (for next links).
    pub(crate) pairs: Vec<(String, String)>,
    /// Filter key → the values any of which may match.
    pub(crate) filters: BTreeMap<String, Vec<String>>,
    /// Attributes to return; empty: all.
    pub(crate) fields: Vec<String>,
    pub(crate) limit: Option<usize>,
    pub(crate) marker: Option<String>,
}

impl Query {
    /// Parses `raw` for a resource whose filterable attributes are `attributes`.
    pub(crate) fn parse(raw: Option<&str>, attributes: &[&str]) -> Result<Query, RestError> {
        let mut q = Query::default();
        let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        for (key, value) in &pairs {
            match key.as_str() {
                "fields" => q.fields.extend(
                    value
                        .split(',')
                        .filter(|f| !f.is_empty())
                        .map(str::to_string),
                ),
                "limit" => {
                    let limit = value.parse::<i64>().map_err(|_| {
                        RestError::bad_request(format!("Limit must be an integer, not {value:?}"))
                    })?;
                    // Neutron: 0 and negative values mean "no limit" (clamped).
                    q.limit = usize::try_from(limit).ok().filter(|l| *l > 0);
                }
                "marker" => q.marker = Some(value.clone()).filter(|m| !m.is_empty()),
                "page_reverse" => {
                    if !value.eq_ignore_ascii_case("false") {
                        return Err(RestError::bad_request("page_reverse is not supported"));
                    }
                }
                "sort_key" => {
                    if value != "id" {
                        return Err(RestError::bad_request(format!(
                            "{value} is an invalid attribute for sort_key (only id is supported)"
                        )));
                    }
                }
                "sort_dir" => {
                    if value != "asc" {
                        return Err(RestError::bad_request(format!(
                            "{value} is an invalid value for sort_dir (only asc is supported)"
                        )));
                    }
                }
                key if attributes.contains(&key) || TAG_FILTERS.contains(&key) => {
                    let values = q.filters.entry(key.to_string()).or_default();
                    if values.len() >= FILTER_VALUES_MAX {
                        return Err(RestError::bad_request(format!(
                            "more than {FILTER_VALUES_MAX} values for filter {key}"
                        )));
                    }
                    values.push(value.clone());
                }
                key => {
                    return Err(RestError::bad_request(format!(
                        "['{key}'] is invalid attribute for filtering"
                    )))
                }
            }
        }
        q.pairs = pairs;
        Ok(q)
    }

    /// The single value of a filter, when it has exactly one.
    pub(crate) fn single(&self, key: &str) -> Option<&str> {
        match self.filters.get(key).map(Vec::as_slice) {
            Some([one]) => Some(one.as_str()),
            _ => None,
        }
    }

    /// The tags of a tag filter (`tags=a,b&tags=c`: a, b, c).
    pub(crate) fn tags(&self, key: &str) -> Vec<String> {
        self.filters
            .get(key)
            .map(|values| {
                values
                    .iter()
                    .flat_map(|v| v.split(','))
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `item` passes every filter.
    pub(crate) fn matches(&self, item: &Map<String, Value>) -> bool {
        self.filters.iter().all(|(key, values)| {
            if TAG_FILTERS.contains(&key.as_str()) {
                return tags_match(key, values, item.get("tags"));
            }
            let value = item.get(key).unwrap_or(&Value::Null);
            values.iter().any(|wanted| value_matches(value, wanted))
        })
    }

    /// `item` reduced to the requested `fields` (all when none were asked).
    pub(crate) fn select(&self, item: Map<String, Value>) -> Map<String, Value> {
        if self.fields.is_empty() {
            return item;
        }
        item.into_iter()
            .filter(|(k, _)| self.fields.iter().any(|f| f == k))
            .collect()
    }

    /// Whether the response needs attribute `name`.
    pub(crate) fn wants(&self, name: &str) -> bool {
        self.fields.is_empty() || self.fields.iter().any(|f| f == name)
    }

    /// The query string of the next page: the same one with `limit` and `marker` replaced.
    pub(crate) fn next_query(&self, limit: usize, marker: &str) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.pairs {
            if k != "limit" && k != "marker" {
                out.append_pair(k, v);
            }
        }
        out.append_pair("limit", &limit.to_string());
        out.append_pair("marker", marker);
        out.finish()
    }
}

/// Whether one attribute value matches one filter value.
fn value_matches(value: &Value, wanted: &str) -> bool {
    match value {
        Value::String(s) => s == wanted,
        // `?device_id=` finds the ports whose attribute is empty or null.
        Value::Null => wanted.is_empty(),
        Value::Bool(b) => wanted.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
        Value::Number(n) => n.to_string() == wanted,
        // Lists: strings match an element; `key=value` matches an element
        // object's attribute (`fixed_ips=ip_address=10.0.0.5`).
        Value::Array(items) => items.iter().any(|item| match item {
            Value::String(s) => s == wanted,
            Value::Object(obj) => wanted
                .split_once('=')
                .is_some_and(|(k, v)| obj.get(k).is_some_and(|x| value_matches(x, v))),
            _ => false,
        }),
        Value::Object(_) => false,
    }
}

fn tags_match(filter: &str, values: &[String], tags: Option<&Value>) -> bool {
    let has = |tag: &str| {
        tags.and_then(Value::as_array)
            .is_some_and(|t| t.iter().any(|x| x.as_str() == Some(tag)))
    };
    let wanted: Vec<&str> = values
        .iter()
        .flat_map(|v| v.split(','))
        .filter(|t| !t.is_empty())
        .collect();
    match filter {
        "tags" => wanted.iter().all(|t| has(t)),
        "tags-any" => wanted.iter().any(|t| has(t)),
        "not-tags" => !wanted.iter().all(|t| has(t)),
        _ => !wanted.iter().any(|t| has(t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item() -> Map<String, Value> {
        json!({
            "name": "a", "device_id": "", "admin_state_up": true, "mtu": 1500,
            "fixed_ips": [{"subnet_id": "s", "ip_address": "10.0.0.5"}], "tags": [],
            "gateway_ip": null
        })
        .as_object()
        .cloned()
        .unwrap_or_default()
    }

    const ATTRS: [&str; 6] = [
        "name",
        "device_id",
        "admin_state_up",
        "mtu",
        "fixed_ips",
        "gateway_ip",
    ];

    fn q(raw: &str) -> Query {
        Query::parse(Some(raw), &ATTRS).expect("parse")
    }

    #[test]
    fn repeated_keys_are_ored_and_different_keys_anded() {
        assert!(q("name=b&name=a").matches(&item()));
        assert!(!q("name=a&mtu=9000").matches(&item()));
        assert!(q("name=a&mtu=1500&admin_state_up=True").matches(&item()));
        assert!(q("device_id=").matches(&item()));
        assert!(q("gateway_ip=").matches(&item()));
        assert!(q("fixed_ips=ip_address%3D10.0.0.5").matches(&item()));
        assert!(!q("fixed_ips=ip_address%3D10.0.0.6").matches(&item()));
        assert!(!q("tags=x").matches(&item()));
        assert!(q("not-tags=x").matches(&item()));
    }

    #[test]
    fn unknown_filters_and_sort_keys_are_refused() {
        assert!(Query::parse(Some("colour=red"), &ATTRS).is_err());
        assert!(Query::parse(Some("sort_key=name"), &ATTRS).is_err());
        assert!(Query::parse(Some("limit=x"), &ATTRS).is_err());
        let p = q("fields=name&fields=mtu&limit=2&marker=m&name=a");
        assert_eq!(p.fields, vec!["name", "mtu"]);
        assert_eq!((p.limit, p.marker.as_deref()), (Some(2), Some("m")));
        assert_eq!(
            p.next_query(2, "z"),
            "fields=name&fields=mtu&name=a&limit=2&marker=z"
        );
    }
}
