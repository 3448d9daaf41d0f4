//! Helpers that build commands and drive a state with an increasing log index.

use alcor_state_machine::{
    apply_changes, Command, FixedIpRequest, GatewaySpec, GoalState, Id, Outcome, PortSpec,
    Proposal, Rejection, Reply, State,
};
use std::collections::BTreeMap;

pub(crate) const PROJECT: &str = "proj-a";

/// A state plus the next log index, and every host's table folded from diffs.
pub(crate) struct World {
    pub(crate) state: State,
    pub(crate) index: u64,
    pub(crate) tables: BTreeMap<String, GoalState>,
}

impl World {
    pub(crate) fn new() -> World {
        World {
            state: State::new(),
            index: 0,
            tables: BTreeMap::new(),
        }
    }

    pub(crate) fn apply(&mut self, command: Command) -> Outcome {
        self.index += 1;
        let proposal = Proposal {
            time_ms: 1_700_000_000_000 + self.index,
            command,
        };
        let outcome = self.state.apply(self.index, &proposal);
        for diff in outcome.diffs.per_host() {
            apply_changes(
                self.tables.entry(diff.host.clone()).or_default(),
                &diff.changes,
            );
        }
        outcome
    }

    pub(crate) fn ok(&mut self, command: Command) -> Reply {
        let name = command.name();
        match self.apply(command).result {
            Ok(reply) => reply,
            Err(e) => panic!("{name} rejected: {e}"),
        }
    }

    /// Applies a command that must be rejected and checks that nothing changed.
    pub(crate) fn reject(&mut self, command: Command) -> Rejection {
        let before = self.state.clone();
        let outcome = self.apply(command);
        assert!(outcome.diffs.is_empty(), "a rejection produced diffs");
        assert!(
            self.state.same_content(&before),
            "a rejection changed the state"
        );
        match outcome.result {
            Ok(reply) => panic!("accepted: {reply:?}"),
            Err(e) => e,
        }
    }

    pub(crate) fn table(&self, host: &str) -> GoalState {
        self.tables.get(host).cloned().unwrap_or_default()
    }

    /// Asserts that every host's folded diffs equal its goal state.
    pub(crate) fn assert_tables_match(&self, hosts: &[&str]) {
        for host in hosts {
            assert_eq!(self.table(host), self.state.goal_state(host), "host {host}");
        }
    }
}

pub(crate) fn id(n: u128) -> Id {
    Id(n)
}

pub(crate) fn host(name: &str, ip: &str) -> Command {
    Command::CreateHost {
        id: name.to_string(),
        project_id: "admin".to_string(),
        underlay_ip: ip.parse().expect("test IP"),
    }
}

pub(crate) fn vpc(n: u128, cidr: Option<&str>) -> Command {
    Command::CreateVpc {
        id: id(n),
        project_id: PROJECT.to_string(),
        name: format!("vpc-{n}"),
        cidr: cidr.map(|c| c.parse().expect("test CIDR")),
        vni: None,
        mtu: None,
        admin_state_up: true,
    }
}

pub(crate) fn subnet(n: u128, net: u128, cidr: &str) -> Command {
    Command::CreateSubnet {
        id: id(n),
        project_id: PROJECT.to_string(),
        network_id: id(net),
        name: format!("subnet-{n}"),
        cidr: cidr.parse().expect("test CIDR"),
        gateway: GatewaySpec::Default,
        allocation_pools: None,
        enable_dhcp: true,
        dns_nameservers: Vec::new(),
        host_routes: Vec::new(),
    }
}

pub(crate) fn port_spec(n: u128, net: u128, host: Option<&str>) -> PortSpec {
    PortSpec {
        id: id(n),
        project_id: PROJECT.to_string(),
        network_id: id(net),
        name: format!("port-{n}"),
        fixed_ips: Vec::new(),
        mac_address: None,
        binding_host: host.map(str::to_string),
        device_id: format!("vm-{n}"),
        device_owner: "compute:nova".to_string(),
        security_groups: None,
        allowed_address_pairs: Vec::new(),
        admin_state_up: true,
    }
}

pub(crate) fn port(n: u128, net: u128, host: Option<&str>) -> Command {
    Command::CreatePort(port_spec(n, net, host))
}

pub(crate) fn port_with_ip(n: u128, net: u128, subnet: u128, ip: &str) -> Command {
    let mut spec = port_spec(n, net, None);
    spec.fixed_ips = vec![FixedIpRequest {
        subnet_id: Some(id(subnet)),
        ip_address: Some(ip.parse().expect("test IP")),
    }];
    Command::CreatePort(spec)
}

pub(crate) fn unlimited() -> Command {
    Command::SetQuota {
        project_id: PROJECT.to_string(),
        quota: alcor_state_machine::model::Quota {
            network: -1,
            subnet: -1,
            port: -1,
            router: -1,
            security_group: -1,
            security_group_rule: -1,
            floating_ip: -1,
        },
    }
}

pub(crate) fn as_port(reply: Reply) -> alcor_state_machine::model::Port {
    match reply {
        Reply::Port(p) => alcor_state_machine::model::Port::clone(&p),
        other => panic!("not a port: {other:?}"),
    }
}

pub(crate) fn as_subnet(reply: Reply) -> alcor_state_machine::model::Subnet {
    match reply {
        Reply::Subnet(s) => s,
        other => panic!("not a subnet: {other:?}"),
    }
}
