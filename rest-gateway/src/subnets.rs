//! `/v2.0/subnets`.

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::orchestrator_server::Orchestrator;
use serde_json::{json, Value};
use tonic::Request;

use crate::attrs::{iso8601, nullable, Attrs};
use crate::error::{Answer, RestError};
use crate::resource::{object, page_request, single, Item, Resource, Scope};
use crate::Svc;

/// The subnets collection.
pub(crate) struct Subnets;

fn render(s: &pb::Subnet) -> Item {
    let pools: Vec<Value> = s
        .allocation_pools
        .iter()
        .map(|p| json!({"start": p.start, "end": p.end}))
        .collect();
    let routes: Vec<Value> = s
        .host_routes
        .iter()
        .map(|r| json!({"destination": r.destination, "nexthop": r.nexthop}))
        .collect();
    object(json!({
        "id": s.id,
        "name": s.name,
        "tenant_id": s.project_id,
        "project_id": s.project_id,
        "network_id": s.network_id,
        "cidr": s.cidr,
        "ip_version": if s.cidr.contains(':') { 6 } else { 4 },
        "gateway_ip": nullable(&s.gateway_ip),
        "allocation_pools": pools,
        "enable_dhcp": s.enable_dhcp,
        "dns_nameservers": s.dns_nameservers,
        "host_routes": routes,
        "ipv6_address_mode": null,
        "ipv6_ra_mode": null,
        "subnetpool_id": null,
        "segment_id": null,
        "service_types": [],
        "description": "",
        "revision_number": s.revision,
        "created_at": iso8601(s.created_at_ms),
        "updated_at": iso8601(s.updated_at_ms),
        "tags": s.tags,
    }))
}

fn allocation_pools(a: &mut Attrs) -> Result<Option<Vec<pb::AllocationPool>>, RestError> {
    a.objects("allocation_pools", |p| {
        Ok(pb::AllocationPool {
            start: p.required("start")?,
            end: p.required("end")?,
        })
    })
}

/// A list of `{"destination", "nexthop"}` routes (a subnet's `host_routes`,
/// a router's `routes`).
pub(crate) fn routes(a: &mut Attrs, key: &str) -> Result<Option<Vec<pb::Route>>, RestError> {
    a.objects(key, |r| {
        Ok(pb::Route {
            destination: r.required("destination")?,
            nexthop: r.required("nexthop")?,
        })
    })
}

/// Attributes a subnet accepts only at their default value.
fn defaults_only(a: &mut Attrs) -> Result<(), RestError> {
    a.only_default("description", &json!(""))?;
    a.only_default("ipv6_address_mode", &Value::Null)?;
    a.only_default("ipv6_ra_mode", &Value::Null)?;
    a.only_default("subnetpool_id", &Value::Null)?;
    a.only_default("segment_id", &Value::Null)?;
    a.only_default("service_types", &json!([]))
}

impl Resource for Subnets {
    const SINGULAR: &'static str = "subnet";
    const PLURAL: &'static str = "subnets";
    const NOT_FOUND: &'static str = "SubnetNotFound";
    const FILTERS: &'static [&'static str] = &[
        "id",
        "name",
        "tenant_id",
        "project_id",
        "network_id",
        "cidr",
        "ip_version",
        "gateway_ip",
        "enable_dhcp",
        "subnetpool_id",
        "ipv6_address_mode",
        "ipv6_ra_mode",
        "segment_id",
        "description",
        "revision_number",
    ];

    async fn get(svc: &Svc, id: &str) -> Result<Item, RestError> {
        let subnet = svc
            .get_subnet(Request::new(pb::GetSubnetRequest {
                id: id.to_string(),
                stale: false,
                ..Default::default()
            }))
            .await
            .rest()?;
        Ok(render(&subnet))
    }

    async fn list(
        svc: &Svc,
        scope: &Scope,
        marker: &str,
        limit: usize,
    ) -> Result<(Vec<Item>, String), RestError> {
        let page = svc
            .list_subnets(Request::new(page_request!(
                scope,
                marker,
                limit,
                pb::ListSubnetsRequest {
                    network_id: scope.network_id.clone()
                }
            )))
            .await
            .rest()?;
        Ok((page.subnets.iter().map(render).collect(), page.next_marker))
    }

    async fn create(svc: &Svc, items: Vec<Attrs>) -> Result<Vec<Item>, RestError> {
        let mut a = single::<Self>(items)?;
        let cidr = a.required("cidr")?;
        let ip_version = a.u32("ip_version")?;
        let v6 = cidr.contains(':');
        match ip_version {
            None => {}
            Some(4) if !v6 => {}
            Some(6) if v6 => {}
            Some(v) => {
                return Err(RestError::invalid_input(format!(
                    "ip_version {v} does not match cidr {cidr}"
                )))
            }
        }
        // `"gateway_ip": null` means no gateway; absent means the default.
        let (gateway_ip, no_gateway) = match a.take("gateway_ip") {
            None => (String::new(), false),
            Some(Value::Null) => (String::new(), true),
            Some(Value::String(g)) => (g, false),
            Some(other) => {
                return Err(RestError::invalid_input(format!(
                    "Invalid input for gateway_ip. Reason: '{other}' is not a valid IP address"
                )))
            }
        };
        let pools = allocation_pools(&mut a)?.unwrap_or_default();
        let routes = routes(&mut a, "host_routes")?.unwrap_or_default();
        let request = pb::CreateSubnetRequest {
            id: a.string("id")?.unwrap_or_default(),
            project_id: a.string("project_id")?.unwrap_or_default(),
            network_id: a.required("network_id")?,
            name: a.string("name")?.unwrap_or_default(),
            cidr,
            gateway_ip,
            no_gateway,
            allocation_pools: pools,
            enable_dhcp: a.boolean("enable_dhcp")?,
            dns_nameservers: a.strings("dns_nameservers")?.unwrap_or_default(),
            host_routes: routes,
            tags: a.strings("tags")?.unwrap_or_default(),
            ..Default::default()
        };
        defaults_only(&mut a)?;
        a.finish()?;
        let subnet = svc.create_subnet(Request::new(request)).await.rest()?;
        Ok(vec![render(&subnet)])
    }

    async fn update(
        svc: &Svc,
        id: &str,
        mut a: Attrs,
        expected_revision: Option<u64>,
    ) -> Result<Item, RestError> {
        // `"gateway_ip": null` removes the gateway.
        let gateway_ip = match a.take("gateway_ip") {
            None => None,
            Some(Value::Null) => Some(String::new()),
            Some(Value::String(g)) => Some(g),
            Some(other) => {
                return Err(RestError::invalid_input(format!(
                    "Invalid input for gateway_ip. Reason: '{other}' is not a valid IP address"
                )))
            }
        };
        let request = pb::UpdateSubnetRequest {
            id: id.to_string(),
            name: a.string("name")?,
            gateway_ip,
            allocation_pools: allocation_pools(&mut a)?
                .map(|pools| pb::AllocationPoolList { pools }),
            enable_dhcp: a.boolean("enable_dhcp")?,
            dns_nameservers: a
                .strings("dns_nameservers")?
                .map(|addresses| pb::AddressList { addresses }),
            host_routes: routes(&mut a, "host_routes")?.map(|routes| pb::RouteList { routes }),
            tags: a.strings("tags")?.map(|tags| pb::TagSet { tags }),
            expected_revision,
        };
        defaults_only(&mut a)?;
        a.finish()?;
        let subnet = svc.update_subnet(Request::new(request)).await.rest()?;
        Ok(render(&subnet))
    }

    async fn delete(svc: &Svc, id: &str, expected_revision: Option<u64>) -> Result<(), RestError> {
        svc.delete_subnet(Request::new(pb::DeleteSubnetRequest {
            id: id.to_string(),
            expected_revision,
        }))
        .await
        .rest()?;
        Ok(())
    }
}
