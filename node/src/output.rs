//! How `alcor ctl` prints resources: `-o table` (comfy-table) or `-o json`
//! (serde_json). Each resource says once which columns and fields it has.

use alcor_client::types as pb;
use alcor_client::Page;
use comfy_table::Table;
use serde_json::{json, Value};

use crate::cli::OutputFormat;

/// A printable resource.
pub(crate) trait Render {
    /// Table column names.
    fn header() -> &'static [&'static str];
    /// One table row, matching `header`.
    fn row(&self) -> Vec<String>;
    /// The full JSON form.
    fn json(&self) -> Value;
}

/// Writes one line to stdout (see the `out!` macro). A closed pipe ends
/// the process with status 0; any other write error with status 1.
pub(crate) fn write_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"));
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(1);
    }
}

/// Prints one resource.
pub(crate) fn one<T: Render>(item: &T, format: OutputFormat) {
    match format {
        OutputFormat::Json => out!("{}", item.json()),
        OutputFormat::Table => {
            let mut table = Table::new();
            table.set_header(vec!["FIELD", "VALUE"]);
            for (name, value) in T::header().iter().zip(item.row()) {
                table.add_row(vec![name.to_string(), value]);
            }
            out!("{table}");
        }
    }
}

/// Prints a list page and, when there is more, the marker of the next one.
pub(crate) fn list<T: Render>(key: &str, page: &Page<T>, format: OutputFormat) {
    let items = &page.items;
    let next_marker = page.next_marker.as_deref().unwrap_or("");
    match format {
        OutputFormat::Json => {
            let items: Vec<Value> = items.iter().map(Render::json).collect();
            out!("{}", json!({ key: items, "next_marker": next_marker }));
        }
        OutputFormat::Table => {
            let mut table = Table::new();
            table.set_header(T::header().to_vec());
            for item in items {
                table.add_row(item.row());
            }
            out!("{table}");
            if !next_marker.is_empty() {
                out!("next marker: {next_marker}");
            }
        }
    }
}

/// Prints the result of a delete.
pub(crate) fn deleted(id: &str, revision: u64, format: OutputFormat) {
    match format {
        OutputFormat::Json => out!("{}", json!({ "id": id, "revision": revision })),
        OutputFormat::Table => out!("deleted {id} at revision {revision}"),
    }
}

fn host_status(status: i32) -> &'static str {
    match pb::HostStatus::try_from(status) {
        Ok(pb::HostStatus::Up) => "UP",
        Ok(pb::HostStatus::Maintenance) => "MAINTENANCE",
        _ => "UNKNOWN",
    }
}

fn port_status(status: i32) -> &'static str {
    match pb::PortStatus::try_from(status) {
        Ok(pb::PortStatus::Down) => "DOWN",
        Ok(pb::PortStatus::Active) => "ACTIVE",
        Ok(pb::PortStatus::Error) => "ERROR",
        _ => "UNKNOWN",
    }
}

/// Neutron's `binding:vif_type` text of a port's binding state.
fn vif_type(vif_type: i32) -> &'static str {
    match pb::VifType::try_from(vif_type) {
        Ok(pb::VifType::Unbound) => "unbound",
        Ok(pb::VifType::BindingFailed) => "binding_failed",
        Ok(pb::VifType::Ovs) => "ovs",
        _ => "unknown",
    }
}

impl Render for pb::Host {
    fn header() -> &'static [&'static str] {
        &["ID", "PROJECT", "UNDERLAY IP", "STATUS", "REVISION"]
    }
    fn row(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.project_id.clone(),
            self.underlay_ip.clone(),
            host_status(self.status).to_string(),
            self.revision.to_string(),
        ]
    }
    fn json(&self) -> Value {
        json!({
            "id": self.id, "project_id": self.project_id, "underlay_ip": self.underlay_ip,
            "status": host_status(self.status), "revision": self.revision,
            "created_at_ms": self.created_at_ms, "updated_at_ms": self.updated_at_ms,
        })
    }
}

impl Render for pb::Vpc {
    fn header() -> &'static [&'static str] {
        &["ID", "PROJECT", "NAME", "CIDR", "VNI", "MTU", "REVISION"]
    }
    fn row(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.project_id.clone(),
            self.name.clone(),
            self.cidr.clone(),
            self.vni.to_string(),
            self.mtu.to_string(),
            self.revision.to_string(),
        ]
    }
    fn json(&self) -> Value {
        json!({
            "id": self.id, "project_id": self.project_id, "name": self.name,
            "cidr": self.cidr, "vni": self.vni, "mtu": self.mtu,
            "admin_state_up": self.admin_state_up, "revision": self.revision,
            "tags": self.tags, "qos_policy_id": self.qos_policy_id,
            "created_at_ms": self.created_at_ms, "updated_at_ms": self.updated_at_ms,
        })
    }
}

impl Render for pb::QosPolicy {
    fn header() -> &'static [&'static str] {
        &["ID", "PROJECT", "NAME", "SHARED", "RULES", "REVISION"]
    }
    fn row(&self) -> Vec<String> {
        let rules: Vec<String> = self.rules.iter().map(qos_rule_text).collect();
        vec![
            self.id.clone(),
            self.project_id.clone(),
            self.name.clone(),
            self.shared.to_string(),
            rules.join("; "),
            self.revision.to_string(),
        ]
    }
    fn json(&self) -> Value {
        let rules: Vec<Value> = self.rules.iter().map(qos_rule_json).collect();
        json!({
            "id": self.id, "project_id": self.project_id, "name": self.name,
            "description": self.description, "shared": self.shared, "rules": rules,
            "revision": self.revision,
            "created_at_ms": self.created_at_ms, "updated_at_ms": self.updated_at_ms,
        })
    }
}

fn qos_direction(direction: i32) -> &'static str {
    match pb::Direction::try_from(direction) {
        Ok(pb::Direction::Ingress) => "ingress",
        _ => "egress",
    }
}

/// A rule in a table cell: `<id> bandwidth_limit egress 1000 kbps (burst 100 kbit)`.
fn qos_rule_text(rule: &pb::QosRule) -> String {
    match &rule.kind {
        Some(pb::qos_rule::Kind::BandwidthLimit(b)) => format!(
            "{} bandwidth_limit {} {} kbps (burst {} kbit)",
            rule.id,
            qos_direction(b.direction),
            b.max_kbps,
            b.max_burst_kbps
        ),
        Some(pb::qos_rule::Kind::DscpMarking(m)) => {
            format!("{} dscp_marking {}", rule.id, m.dscp_mark)
        }
        None => rule.id.clone(),
    }
}

fn qos_rule_json(rule: &pb::QosRule) -> Value {
    match &rule.kind {
        Some(pb::qos_rule::Kind::BandwidthLimit(b)) => json!({
            "id": rule.id, "type": "bandwidth_limit", "direction": qos_direction(b.direction),
            "max_kbps": b.max_kbps, "max_burst_kbps": b.max_burst_kbps,
        }),
        Some(pb::qos_rule::Kind::DscpMarking(m)) => json!({
            "id": rule.id, "type": "dscp_marking", "dscp_mark": m.dscp_mark,
        }),
        None => json!({ "id": rule.id }),
    }
}

impl Render for pb::Subnet {
    fn header() -> &'static [&'static str] {
        &[
            "ID", "PROJECT", "NETWORK", "NAME", "CIDR", "GATEWAY", "REVISION",
        ]
    }
    fn row(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.project_id.clone(),
            self.network_id.clone(),
            self.name.clone(),
            self.cidr.clone(),
            self.gateway_ip.clone(),
            self.revision.to_string(),
        ]
    }
    fn json(&self) -> Value {
        let pools: Vec<Value> = self
            .allocation_pools
            .iter()
            .map(|p| json!({ "start": p.start, "end": p.end }))
            .collect();
        json!({
            "id": self.id, "project_id": self.project_id, "network_id": self.network_id,
            "name": self.name, "cidr": self.cidr, "gateway_ip": self.gateway_ip,
            "allocation_pools": pools, "enable_dhcp": self.enable_dhcp,
            "dns_nameservers": self.dns_nameservers, "revision": self.revision,
            "tags": self.tags,
            "created_at_ms": self.created_at_ms, "updated_at_ms": self.updated_at_ms,
        })
    }
}

impl Render for pb::Port {
    fn header() -> &'static [&'static str] {
        &[
            "ID", "NETWORK", "NAME", "IPS", "MAC", "HOST", "STATUS", "REVISION",
        ]
    }
    fn row(&self) -> Vec<String> {
        let ips: Vec<&str> = self
            .fixed_ips
            .iter()
            .map(|f| f.ip_address.as_str())
            .collect();
        vec![
            self.id.clone(),
            self.network_id.clone(),
            self.name.clone(),
            ips.join(" "),
            self.mac_address.clone(),
            self.binding_host.clone(),
            port_status(self.status).to_string(),
            self.revision.to_string(),
        ]
    }
    fn json(&self) -> Value {
        let fixed_ips: Vec<Value> = self
            .fixed_ips
            .iter()
            .map(|f| json!({ "subnet_id": f.subnet_id, "ip_address": f.ip_address }))
            .collect();
        json!({
            "id": self.id, "project_id": self.project_id, "network_id": self.network_id,
            "name": self.name, "fixed_ips": fixed_ips, "mac_address": self.mac_address,
            "binding_host": self.binding_host, "device_id": self.device_id,
            "device_owner": self.device_owner, "security_groups": self.security_groups,
            "admin_state_up": self.admin_state_up, "status": port_status(self.status),
            "status_detail": self.status_detail, "vif_type": vif_type(self.vif_type),
            "qos_policy_id": self.qos_policy_id,
            "revision": self.revision,
            "tags": self.tags,
            "created_at_ms": self.created_at_ms, "updated_at_ms": self.updated_at_ms,
        })
    }
}

impl Render for pb::SecurityGroup {
    fn header() -> &'static [&'static str] {
        &[
            "ID",
            "PROJECT",
            "NAME",
            "DESCRIPTION",
            "DEFAULT",
            "REVISION",
        ]
    }
    fn row(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.project_id.clone(),
            self.name.clone(),
            self.description.clone(),
            self.is_default.to_string(),
            self.revision.to_string(),
        ]
    }
    fn json(&self) -> Value {
        json!({
            "id": self.id, "project_id": self.project_id, "name": self.name,
            "description": self.description, "is_default": self.is_default,
            "revision": self.revision,
            "tags": self.tags,
            "created_at_ms": self.created_at_ms, "updated_at_ms": self.updated_at_ms,
        })
    }
}

fn direction(direction: i32) -> &'static str {
    match pb::Direction::try_from(direction) {
        Ok(pb::Direction::Ingress) => "ingress",
        Ok(pb::Direction::Egress) => "egress",
        _ => "unspecified",
    }
}

fn ethertype(ethertype: i32) -> &'static str {
    match pb::EtherType::try_from(ethertype) {
        Ok(pb::EtherType::Ipv4) => "IPv4",
        Ok(pb::EtherType::Ipv6) => "IPv6",
        _ => "unspecified",
    }
}

impl Render for pb::SecurityGroupRule {
    fn header() -> &'static [&'static str] {
        &[
            "ID",
            "GROUP",
            "DIRECTION",
            "ETHERTYPE",
            "PROTOCOL",
            "PORTS",
            "REMOTE",
            "REVISION",
        ]
    }
    fn row(&self) -> Vec<String> {
        let ports = match (self.port_range_min, self.port_range_max) {
            (None, None) => "any".to_string(),
            (min, max) => format!(
                "{}-{}",
                min.map(|p| p.to_string()).unwrap_or_default(),
                max.map(|p| p.to_string()).unwrap_or_default()
            ),
        };
        let remote = if self.remote_group_id.is_empty() {
            self.remote_ip_prefix.clone()
        } else {
            format!("group {}", self.remote_group_id)
        };
        vec![
            self.id.clone(),
            self.security_group_id.clone(),
            direction(self.direction).to_string(),
            ethertype(self.ethertype).to_string(),
            self.protocol.clone(),
            ports,
            remote,
            self.revision.to_string(),
        ]
    }
    fn json(&self) -> Value {
        json!({
            "id": self.id, "project_id": self.project_id,
            "security_group_id": self.security_group_id,
            "direction": direction(self.direction), "ethertype": ethertype(self.ethertype),
            "protocol": self.protocol, "port_range_min": self.port_range_min,
            "port_range_max": self.port_range_max, "remote_ip_prefix": self.remote_ip_prefix,
            "remote_group_id": self.remote_group_id, "revision": self.revision,
            "created_at_ms": self.created_at_ms, "updated_at_ms": self.updated_at_ms,
        })
    }
}

impl Render for pb::Router {
    fn header() -> &'static [&'static str] {
        &["ID", "PROJECT", "NAME", "INTERFACES", "ROUTES", "REVISION"]
    }
    fn row(&self) -> Vec<String> {
        let interfaces: Vec<String> = self
            .interfaces
            .iter()
            .map(|i| format!("{}={}", i.subnet_id, i.ip_address))
            .collect();
        let routes: Vec<String> = self
            .routes
            .iter()
            .map(|r| format!("{} via {}", r.destination, r.nexthop))
            .collect();
        vec![
            self.id.clone(),
            self.project_id.clone(),
            self.name.clone(),
            interfaces.join(" "),
            routes.join(", "),
            self.revision.to_string(),
        ]
    }
    fn json(&self) -> Value {
        let interfaces: Vec<Value> = self
            .interfaces
            .iter()
            .map(|i| {
                json!({ "subnet_id": i.subnet_id, "ip_address": i.ip_address, "port_id": i.port_id })
            })
            .collect();
        let routes: Vec<Value> = self
            .routes
            .iter()
            .map(|r| json!({ "destination": r.destination, "nexthop": r.nexthop }))
            .collect();
        json!({
            "id": self.id, "project_id": self.project_id, "name": self.name,
            "admin_state_up": self.admin_state_up, "interfaces": interfaces,
            "routes": routes, "revision": self.revision,
            "tags": self.tags,
            "created_at_ms": self.created_at_ms, "updated_at_ms": self.updated_at_ms,
        })
    }
}

fn floating_ip_status(status: i32) -> &'static str {
    match pb::FloatingIpStatus::try_from(status) {
        Ok(pb::FloatingIpStatus::Down) => "DOWN",
        Ok(pb::FloatingIpStatus::Active) => "ACTIVE",
        _ => "UNKNOWN",
    }
}

impl Render for pb::FloatingIp {
    fn header() -> &'static [&'static str] {
        &[
            "ID", "PROJECT", "ADDRESS", "PORT", "FIXED IP", "ROUTER", "STATUS", "REVISION",
        ]
    }
    fn row(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.project_id.clone(),
            self.floating_ip_address.clone(),
            self.port_id.clone(),
            self.fixed_ip_address.clone(),
            self.router_id.clone(),
            floating_ip_status(self.status).to_string(),
            self.revision.to_string(),
        ]
    }
    fn json(&self) -> Value {
        json!({
            "id": self.id, "project_id": self.project_id,
            "floating_network_id": self.floating_network_id,
            "floating_subnet_id": self.floating_subnet_id,
            "floating_ip_address": self.floating_ip_address, "port_id": self.port_id,
            "fixed_ip_address": self.fixed_ip_address, "router_id": self.router_id,
            "status": floating_ip_status(self.status), "description": self.description,
            "revision": self.revision,
            "tags": self.tags,
            "created_at_ms": self.created_at_ms, "updated_at_ms": self.updated_at_ms,
        })
    }
}

/// Prints `alcor ctl quotas show|set|reset`: limit (-1: unlimited) and usage per
/// resource.
pub(crate) fn quota(q: &pb::Quota, format: OutputFormat) {
    let limits = q.limits.unwrap_or_default();
    let usage = q.usage.unwrap_or_default();
    let rows = [
        ("network", limits.network, usage.network),
        ("subnet", limits.subnet, usage.subnet),
        ("port", limits.port, usage.port),
        ("router", limits.router, usage.router),
        (
            "security_group",
            limits.security_group,
            usage.security_group,
        ),
        (
            "security_group_rule",
            limits.security_group_rule,
            usage.security_group_rule,
        ),
    ];
    match format {
        OutputFormat::Json => {
            let mut limit_map = serde_json::Map::new();
            let mut usage_map = serde_json::Map::new();
            for (name, limit, used) in rows {
                limit_map.insert(name.to_string(), json!(limit));
                usage_map.insert(name.to_string(), json!(used));
            }
            out!(
                "{}",
                json!({ "project_id": q.project_id, "limits": limit_map, "usage": usage_map })
            );
        }
        OutputFormat::Table => {
            let mut table = Table::new();
            table.set_header(vec!["RESOURCE", "LIMIT", "USED"]);
            for (name, limit, used) in rows {
                let limit = if limit < 0 {
                    "unlimited".to_string()
                } else {
                    limit.to_string()
                };
                table.add_row(vec![name.to_string(), limit, used.to_string()]);
            }
            out!("quota of project {}", q.project_id);
            out!("{table}");
        }
    }
}

/// An optional log index, `-` when absent.
fn index_or_dash(index: Option<u64>) -> String {
    index.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// One member as JSON.
fn member_json(m: &pb::Member) -> Value {
    json!({ "id": m.id, "raft_addr": m.raft_addr, "api_addr": m.api_addr, "voter": m.voter })
}

/// One member's table row: ID, RAFT ADDR, API ADDR, ROLE.
fn member_row(m: &pb::Member) -> Vec<String> {
    vec![
        m.id.to_string(),
        m.raft_addr.clone(),
        m.api_addr.clone(),
        if m.voter { "voter" } else { "learner" }.to_string(),
    ]
}

/// The members as the answering node sees them, the leader marked
/// (`cluster status` and `cluster members`).
fn members_table(s: &pb::StatusResponse) -> Table {
    let mut table = Table::new();
    table.set_header(vec!["ID", "RAFT ADDR", "API ADDR", "ROLE", "LEADER"]);
    for m in &s.members {
        let mut row = member_row(m);
        row.push(if s.leader_id == Some(m.id) { "*" } else { "" }.to_string());
        table.add_row(row);
    }
    table
}

/// Prints `alcor ctl cluster status`.
pub(crate) fn status(s: &pb::StatusResponse, format: OutputFormat) {
    match format {
        OutputFormat::Json => {
            let members: Vec<Value> = s.members.iter().map(member_json).collect();
            out!(
                "{}",
                json!({
                    "id": s.id, "state": s.state, "leader_id": s.leader_id, "term": s.term,
                    "last_log_index": s.last_log_index, "committed_index": s.committed_index,
                    "applied_index": s.applied_index, "snapshot_index": s.snapshot_index,
                    "purged_index": s.purged_index, "members": members,
                })
            );
        }
        OutputFormat::Table => {
            out!(
                "node {} ({}), leader {}, term {}, last log {}, committed {}, applied {}, snapshot {}",
                s.id,
                s.state,
                index_or_dash(s.leader_id),
                s.term,
                index_or_dash(s.last_log_index),
                index_or_dash(s.committed_index),
                index_or_dash(s.applied_index),
                index_or_dash(s.snapshot_index),
            );
            out!("{}", members_table(s));
        }
    }
}

/// Prints `alcor ctl cluster members`: the members as the answering node
/// sees them, the leader marked.
pub(crate) fn members(s: &pb::StatusResponse, format: OutputFormat) {
    match format {
        OutputFormat::Json => {
            let members: Vec<Value> = s
                .members
                .iter()
                .map(|m| {
                    let mut member = member_json(m);
                    member["leader"] = json!(s.leader_id == Some(m.id));
                    member
                })
                .collect();
            out!("{}", json!({ "members": members }));
        }
        OutputFormat::Table => out!("{}", members_table(s)),
    }
}

/// Prints the membership after `alcor ctl cluster add-learner|promote|set-voters|remove`.
pub(crate) fn membership(m: &pb::MembershipResponse, format: OutputFormat) {
    match format {
        OutputFormat::Json => {
            let members: Vec<Value> = m.members.iter().map(member_json).collect();
            out!(
                "{}",
                json!({ "log_index": m.log_index, "members": members })
            );
        }
        OutputFormat::Table => {
            out!("membership committed at log index {}", m.log_index);
            let mut table = Table::new();
            table.set_header(vec!["ID", "RAFT ADDR", "API ADDR", "ROLE"]);
            for m in &m.members {
                table.add_row(member_row(m));
            }
            out!("{table}");
        }
    }
}

/// Prints `alcor ctl cluster snapshot`.
pub(crate) fn snapshot(s: &pb::TriggerSnapshotResponse, format: OutputFormat) {
    match format {
        OutputFormat::Json => out!(
            "{}",
            json!({ "snapshot_index": s.snapshot_index, "purged_index": s.purged_index })
        ),
        OutputFormat::Table => out!(
            "snapshot at log index {}, log purged up to {}",
            index_or_dash(s.snapshot_index),
            index_or_dash(s.purged_index)
        ),
    }
}

/// Prints `alcor ctl cluster host-digest`: the controller's digest and the
/// agent's latest report on the answering node, digests in lowercase hex
/// (an empty programmed digest: the agent programs no dataplane).
pub(crate) fn host_digest(host: &str, d: &pb::HostDigestResponse, format: OutputFormat) {
    let hex = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
    let digest = hex(&d.digest);
    match format {
        OutputFormat::Json => {
            let agent = d.agent_report.as_ref().map(|r| {
                json!({
                    "revision": r.revision,
                    "digest": hex(&r.digest),
                    "programmed_digest": hex(&r.programmed_digest),
                })
            });
            out!(
                "{}",
                json!({ "host": host, "revision": d.revision, "digest": digest, "agent_report": agent })
            )
        }
        OutputFormat::Table => {
            out!("{host} at revision {}: {digest}", d.revision);
            if let Some(r) = &d.agent_report {
                out!(
                    "agent report at revision {}: {}  programmed: {}",
                    r.revision,
                    hex(&r.digest),
                    if r.programmed_digest.is_empty() {
                        "-".to_string()
                    } else {
                        hex(&r.programmed_digest)
                    }
                );
            }
        }
    }
}

/// Prints `alcor ctl barrier`: each host's highest ack.
pub(crate) fn barrier(b: &pb::BarrierResponse, format: OutputFormat) {
    match format {
        OutputFormat::Json => {
            let acked: Vec<Value> = b
                .acked
                .iter()
                .map(|a| json!({ "host": a.host, "revision": a.revision }))
                .collect();
            out!(
                "{}",
                json!({ "revision": b.revision, "acked": acked, "pending": b.pending })
            );
        }
        OutputFormat::Table => {
            let mut table = Table::new();
            table.set_header(vec!["HOST", "ACKED REVISION"]);
            for a in &b.acked {
                table.add_row(vec![a.host.clone(), a.revision.to_string()]);
            }
            out!("every host acked revision {}", b.revision);
            out!("{table}");
        }
    }
}
