//! `/v2.0/ports`; a bulk create is one all-or-nothing `CreatePorts`.

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::orchestrator_server::Orchestrator;
use serde_json::{json, Value};
use tonic::Request;

use crate::attrs::{iso8601, nullable, Attrs};
use crate::error::{Answer, RestError};
use crate::limits::BULK_PORTS_MAX;
use crate::resource::{object, page_request, Item, Resource, Scope};
use crate::Svc;

/// The ports collection.
pub(crate) struct Ports;

fn status(p: &pb::Port) -> &'static str {
    match pb::PortStatus::try_from(p.status) {
        Ok(pb::PortStatus::Active) => "ACTIVE",
        Ok(pb::PortStatus::Error) => "ERROR",
        _ => "DOWN",
    }
}

fn render(p: &pb::Port) -> Item {
    let fixed_ips: Vec<Value> = p
        .fixed_ips
        .iter()
        .map(|f| json!({"subnet_id": f.subnet_id, "ip_address": f.ip_address}))
        .collect();
    let pairs: Vec<Value> = p
        .allowed_address_pairs
        .iter()
        .map(|a| {
            let mac = if a.mac_address.is_empty() {
                &p.mac_address
            } else {
                &a.mac_address
            };
            json!({"ip_address": a.ip_address, "mac_address": mac})
        })
        .collect();
    // Neutron's binding:vif_type and, once bound, vif_details.
    let (vif_type, vif_details) = match pb::VifType::try_from(p.vif_type) {
        Ok(pb::VifType::Ovs) => (
            "ovs",
            json!({"port_filter": p.port_security_enabled, "connectivity": "l2"}),
        ),
        Ok(pb::VifType::BindingFailed) => ("binding_failed", json!({})),
        _ => ("unbound", json!({})),
    };
    object(json!({
        "id": p.id,
        "name": p.name,
        "tenant_id": p.project_id,
        "project_id": p.project_id,
        "network_id": p.network_id,
        "fixed_ips": fixed_ips,
        "mac_address": p.mac_address,
        "binding:host_id": p.binding_host,
        "binding:vnic_type": "normal",
        "binding:vif_type": vif_type,
        "binding:vif_details": vif_details,
        "binding:profile": {},
        "device_id": p.device_id,
        "device_owner": p.device_owner,
        "security_groups": p.security_groups,
        "allowed_address_pairs": pairs,
        "admin_state_up": p.admin_state_up,
        "status": status(p),
        "port_security_enabled": p.port_security_enabled,
        "qos_policy_id": nullable(&p.qos_policy_id),
        "extra_dhcp_opts": [],
        "description": "",
        "revision_number": p.revision,
        "created_at": iso8601(p.created_at_ms),
        "updated_at": iso8601(p.updated_at_ms),
        "tags": p.tags,
    }))
}

/// Attributes a port accepts only at their default value.
fn defaults_only(a: &mut Attrs) -> Result<(), RestError> {
    a.only_default("description", &json!(""))?;
    a.only_default("binding:vnic_type", &json!("normal"))?;
    a.only_default("binding:profile", &json!({}))?;
    a.only_default("extra_dhcp_opts", &json!([]))
}

fn address_pairs(a: &mut Attrs) -> Result<Option<Vec<pb::AddressPair>>, RestError> {
    a.objects("allowed_address_pairs", |p| {
        Ok(pb::AddressPair {
            ip_address: p.required("ip_address")?,
            mac_address: p.string("mac_address")?.unwrap_or_default(),
        })
    })
}

fn create_request(mut a: Attrs) -> Result<pb::CreatePortRequest, RestError> {
    let fixed_ips = a
        .objects("fixed_ips", |f| {
            Ok(pb::FixedIpRequest {
                subnet_id: f.string("subnet_id")?.unwrap_or_default(),
                ip_address: f.string("ip_address")?.unwrap_or_default(),
            })
        })?
        .unwrap_or_default();
    let pairs = address_pairs(&mut a)?.unwrap_or_default();
    let request = pb::CreatePortRequest {
        id: a.string("id")?.unwrap_or_default(),
        project_id: a.string("project_id")?.unwrap_or_default(),
        network_id: a.required("network_id")?,
        name: a.string("name")?.unwrap_or_default(),
        fixed_ips,
        mac_address: a.string("mac_address")?.unwrap_or_default(),
        binding_host: a.string("binding:host_id")?.unwrap_or_default(),
        device_id: a.string("device_id")?.unwrap_or_default(),
        device_owner: a.string("device_owner")?.unwrap_or_default(),
        security_groups: a.strings("security_groups")?.map(|ids| pb::IdList { ids }),
        allowed_address_pairs: pairs,
        admin_state_up: a.boolean("admin_state_up")?,
        port_security_enabled: a.boolean("port_security_enabled")?,
        tags: a.strings("tags")?.unwrap_or_default(),
        qos_policy_id: a.nullable_string("qos_policy_id")?,
        ..Default::default()
    };
    defaults_only(&mut a)?;
    a.finish()?;
    Ok(request)
}

impl Resource for Ports {
    const SINGULAR: &'static str = "port";
    const PLURAL: &'static str = "ports";
    const NOT_FOUND: &'static str = "PortNotFound";
    const BULK_MAX: usize = BULK_PORTS_MAX;
    const ADMIN_ONLY: &'static [&'static str] = &["binding:host_id"];
    const FILTERS: &'static [&'static str] = &[
        "id",
        "name",
        "tenant_id",
        "project_id",
        "network_id",
        "mac_address",
        "fixed_ips",
        "binding:host_id",
        "binding:vnic_type",
        "binding:vif_type",
        "device_id",
        "device_owner",
        "security_groups",
        "admin_state_up",
        "status",
        "port_security_enabled",
        "qos_policy_id",
        "description",
        "revision_number",
    ];

    async fn get(svc: &Svc, id: &str) -> Result<Item, RestError> {
        let port = svc
            .get_port(Request::new(pb::GetPortRequest {
                id: id.to_string(),
                stale: false,
                ..Default::default()
            }))
            .await
            .rest()?;
        Ok(render(&port))
    }

    async fn list(
        svc: &Svc,
        scope: &Scope,
        marker: &str,
        limit: usize,
    ) -> Result<(Vec<Item>, String), RestError> {
        let page = svc
            .list_ports(Request::new(page_request!(
                scope,
                marker,
                limit,
                pb::ListPortsRequest {
                    network_id: scope.network_id.clone(),
                    host: scope.host.clone()
                }
            )))
            .await
            .rest()?;
        Ok((page.ports.iter().map(render).collect(), page.next_marker))
    }

    async fn create(svc: &Svc, items: Vec<Attrs>) -> Result<Vec<Item>, RestError> {
        let mut requests = items
            .into_iter()
            .map(create_request)
            .collect::<Result<Vec<_>, _>>()?;
        if requests.len() == 1 {
            if let Some(request) = requests.pop() {
                let port = svc.create_port(Request::new(request)).await.rest()?;
                return Ok(vec![render(&port)]);
            }
        }
        let created = svc
            .create_ports(Request::new(pb::CreatePortsRequest {
                ports: requests,
                ..Default::default()
            }))
            .await
            .rest()?;
        Ok(created.ports.iter().map(render).collect())
    }

    async fn update(
        svc: &Svc,
        id: &str,
        mut a: Attrs,
        expected_revision: Option<u64>,
    ) -> Result<Item, RestError> {
        let request = pb::UpdatePortRequest {
            id: id.to_string(),
            name: a.string("name")?,
            binding_host: a.string("binding:host_id")?,
            device_id: a.string("device_id")?,
            device_owner: a.string("device_owner")?,
            security_groups: a.strings("security_groups")?.map(|ids| pb::IdList { ids }),
            admin_state_up: a.boolean("admin_state_up")?,
            allowed_address_pairs: address_pairs(&mut a)?
                .map(|pairs| pb::AddressPairList { pairs }),
            tags: a.strings("tags")?.map(|tags| pb::TagSet { tags }),
            port_security_enabled: a.boolean("port_security_enabled")?,
            qos_policy_id: a.nullable_update("qos_policy_id")?,
            expected_revision,
        };
        defaults_only(&mut a)?;
        a.finish_update(
            "name, binding:host_id, device_id, device_owner, security_groups, allowed_address_pairs, admin_state_up, port_security_enabled, qos_policy_id, tags",
        )?;
        let port = svc.update_port(Request::new(request)).await.rest()?;
        Ok(render(&port))
    }

    async fn delete(svc: &Svc, id: &str, expected_revision: Option<u64>) -> Result<(), RestError> {
        svc.delete_port(Request::new(pb::DeletePortRequest {
            id: id.to_string(),
            expected_revision,
        }))
        .await
        .rest()?;
        Ok(())
    }
}
