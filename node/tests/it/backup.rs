//! Backup and restore with real processes: `alcor ctl snapshot save` from a
//! 3-member cluster under a concurrent write load, `alcor snapshot restore`
//! into the data dirs of a new 3-member cluster (new dirs, new ports), and
//! the state read back through the API on both; plus damaged files refused.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alcor_client::types as pb;
use alcor_client::Client;
use tokio::time::Instant;

use crate::cluster::{ProcessCluster, BIN};
use crate::workload::{uuid, PROJECT};

/// Writers of the concurrent load.
const WRITERS: u64 = 4;
/// How long the load runs before and after the save starts.
const LOAD_MS: u64 = 700;

fn sdk(cluster: &ProcessCluster) -> Client {
    let endpoints: Vec<String> = cluster
        .ids()
        .iter()
        .map(|id| cluster.api_addr(*id))
        .collect();
    Client::builder()
        .endpoints(endpoints)
        .deadline(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// A bit of every kind of resource, with an update and a delete among them.
async fn write_every_kind(client: &Client) {
    let (vpc, subnet, sg, router) = (uuid(0xa1), uuid(0xa2), uuid(0xa3), uuid(0xa4));
    for (n, host) in ["h1", "h2"].iter().enumerate() {
        client
            .hosts()
            .create(pb::CreateHostRequest {
                id: host.to_string(),
                project_id: PROJECT.into(),
                underlay_ip: format!("192.168.0.{}", n + 1),
                ..Default::default()
            })
            .await
            .expect("create host");
    }
    client
        .vpcs()
        .create(pb::CreateVpcRequest {
            id: vpc.clone(),
            project_id: PROJECT.into(),
            name: "vpc".into(),
            cidr: "10.0.0.0/16".into(),
            tags: vec!["backup".into()],
            ..Default::default()
        })
        .await
        .expect("create vpc");
    client
        .subnets()
        .create(pb::CreateSubnetRequest {
            id: subnet.clone(),
            project_id: PROJECT.into(),
            network_id: vpc.clone(),
            cidr: "10.0.0.0/18".into(),
            ..Default::default()
        })
        .await
        .expect("create subnet");
    client
        .security_groups()
        .create(pb::CreateSecurityGroupRequest {
            id: sg.clone(),
            project_id: PROJECT.into(),
            name: "web".into(),
            ..Default::default()
        })
        .await
        .expect("create security group");
    client
        .security_group_rules()
        .create(pb::CreateSecurityGroupRuleRequest {
            id: uuid(0xa5),
            project_id: PROJECT.into(),
            security_group_id: sg.clone(),
            direction: pb::Direction::Ingress.into(),
            ethertype: pb::EtherType::Ipv4.into(),
            protocol: "tcp".into(),
            port_range_min: Some(443),
            port_range_max: Some(443),
            ..Default::default()
        })
        .await
        .expect("create rule");
    client
        .routers()
        .create(pb::CreateRouterRequest {
            id: router.clone(),
            project_id: PROJECT.into(),
            name: "r".into(),
            ..Default::default()
        })
        .await
        .expect("create router");
    client
        .routers()
        .add_interface(&router, &subnet)
        .await
        .expect("router interface");
    for n in 0..3 {
        client
            .ports()
            .create(port(&vpc, &subnet, uuid(0xb0 + n), "h1"))
            .await
            .expect("create port");
    }
    client
        .ports()
        .update(pb::UpdatePortRequest {
            id: uuid(0xb0),
            name: Some("renamed".into()),
            binding_host: Some("h2".into()),
            ..Default::default()
        })
        .await
        .expect("update port");
    client
        .ports()
        .delete(&uuid(0xb1), None)
        .await
        .expect("delete port");
    let (external, external_subnet) = (uuid(0xa7), uuid(0xa8));
    client
        .vpcs()
        .create(pb::CreateVpcRequest {
            id: external.clone(),
            project_id: PROJECT.into(),
            name: "external".into(),
            cidr: "172.16.0.0/16".into(),
            ..Default::default()
        })
        .await
        .expect("create external vpc");
    client
        .subnets()
        .create(pb::CreateSubnetRequest {
            id: external_subnet,
            project_id: PROJECT.into(),
            network_id: external.clone(),
            cidr: "172.16.0.0/24".into(),
            ..Default::default()
        })
        .await
        .expect("create external subnet");
    client
        .floating_ips()
        .create(pb::CreateFloatingIpRequest {
            id: uuid(0xa6),
            project_id: PROJECT.into(),
            floating_network_id: external,
            port_id: uuid(0xb2),
            ..Default::default()
        })
        .await
        .expect("create floating ip");
    client
        .quotas()
        .set(pb::SetQuotaRequest {
            project_id: PROJECT.into(),
            port: Some(100_000),
            ..Default::default()
        })
        .await
        .expect("set quota");
}

fn port(vpc: &str, subnet: &str, id: String, host: &str) -> pb::CreatePortRequest {
    pb::CreatePortRequest {
        id,
        project_id: PROJECT.into(),
        network_id: vpc.into(),
        fixed_ips: vec![pb::FixedIpRequest {
            subnet_id: subnet.into(),
            ip_address: String::new(),
        }],
        binding_host: host.into(),
        ..Default::default()
    }
}

/// Every page of one kind of resource.
macro_rules! list_all {
    ($client:expr, $accessor:ident, $request:ident) => {{
        let mut items = Vec::new();
        let mut marker = String::new();
        loop {
            let page = $client
                .$accessor()
                .list(pb::$request {
                    marker: marker.clone(),
                    limit: 500,
                    ..Default::default()
                })
                .await
                .expect(concat!("list ", stringify!($accessor)));
            items.extend(page.items);
            match page.next_marker {
                Some(next) => marker = next,
                None => break,
            }
        }
        items
    }};
}

/// Everything the API lists, plus the project's quota.
#[derive(Debug)]
struct Everything {
    hosts: Vec<pb::Host>,
    vpcs: Vec<pb::Vpc>,
    subnets: Vec<pb::Subnet>,
    ports: Vec<pb::Port>,
    security_groups: Vec<pb::SecurityGroup>,
    rules: Vec<pb::SecurityGroupRule>,
    routers: Vec<pb::Router>,
    floating_ips: Vec<pb::FloatingIp>,
    quota: pb::Quota,
}

impl Everything {
    async fn list(client: &Client) -> Everything {
        Everything {
            hosts: list_all!(client, hosts, ListHostsRequest),
            vpcs: list_all!(client, vpcs, ListVpcsRequest),
            subnets: list_all!(client, subnets, ListSubnetsRequest),
            ports: list_all!(client, ports, ListPortsRequest),
            security_groups: list_all!(client, security_groups, ListSecurityGroupsRequest),
            rules: list_all!(client, security_group_rules, ListSecurityGroupRulesRequest),
            routers: list_all!(client, routers, ListRoutersRequest),
            floating_ips: list_all!(client, floating_ips, ListFloatingIpsRequest),
            quota: client.quotas().get(PROJECT).await.expect("get quota"),
        }
    }

    /// Fails naming the first difference of each kind.
    fn assert_same(&self, restored: &Everything, revision: u64) {
        fn same<T: std::fmt::Debug + PartialEq>(kind: &str, want: &[T], got: &[T], revision: u64) {
            let first = want.iter().zip(got).find(|(w, g)| w != g);
            assert!(
                want.len() == got.len() && first.is_none(),
                "{kind} restored from revision {revision}: {} on the source, {} restored; first difference: {first:#?}",
                want.len(),
                got.len()
            );
        }
        same("hosts", &self.hosts, &restored.hosts, revision);
        same("vpcs", &self.vpcs, &restored.vpcs, revision);
        same("subnets", &self.subnets, &restored.subnets, revision);
        same("ports", &self.ports, &restored.ports, revision);
        same(
            "security groups",
            &self.security_groups,
            &restored.security_groups,
            revision,
        );
        same("rules", &self.rules, &restored.rules, revision);
        same("routers", &self.routers, &restored.routers, revision);
        same(
            "floating ips",
            &self.floating_ips,
            &restored.floating_ips,
            revision,
        );
        same("quota", &[&self.quota], &[&restored.quota], revision);
    }

    /// What existed at `revision`, given that nothing written after it was
    /// an update or a delete (the load only creates ports, whose count the
    /// quota usage follows).
    fn at(mut self, revision: u64) -> Everything {
        self.hosts.retain(|r| r.revision <= revision);
        self.vpcs.retain(|r| r.revision <= revision);
        self.subnets.retain(|r| r.revision <= revision);
        self.ports.retain(|r| r.revision <= revision);
        self.security_groups.retain(|r| r.revision <= revision);
        self.rules.retain(|r| r.revision <= revision);
        self.routers.retain(|r| r.revision <= revision);
        self.floating_ips.retain(|r| r.revision <= revision);
        if let Some(usage) = self.quota.usage.as_mut() {
            usage.port = self.ports.len() as u64;
        }
        self
    }
}

/// Runs `alcor` with `args`; (success, stdout, stderr).
fn alcor(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BIN).args(args).output().expect("run alcor");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn restore(file: &Path, data_dir: &Path, initial_cluster: &str, id: u64) -> (bool, String) {
    let (file, data_dir) = (file.display().to_string(), data_dir.display().to_string());
    let id = id.to_string();
    let (ok, stdout, stderr) = alcor(&[
        "snapshot",
        "restore",
        &file,
        "--data-dir",
        &data_dir,
        "--initial-cluster",
        initial_cluster,
        "--id",
        &id,
    ]);
    (ok, format!("{stdout}{stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_saved_under_load_restores_a_new_cluster_with_every_resource_and_the_next_revision(
) {
    let source = ProcessCluster::start(3);
    let all = source.ids();
    source.leader(&all).await;
    let client = sdk(&source);
    write_every_kind(&client).await;

    // Port creates from WRITERS tasks until told to stop: (id, revision,
    // when acknowledged).
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(String, u64, Instant)>>> = Arc::default();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (client, stop, acked) = (client.clone(), stop.clone(), acked.clone());
            tokio::spawn(async move {
                for n in 0u64.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let id = uuid(1_000_000 * (w + 1) + n);
                    let request = port(&uuid(0xa1), &uuid(0xa2), id.clone(), "h2");
                    if let Ok(port) = client.ports().create(request).await {
                        acked
                            .lock()
                            .expect("acked")
                            .push((id, port.revision, Instant::now()));
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(LOAD_MS)).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("state.alcorbak");
    let save_started = Instant::now();
    let endpoints: Vec<String> = all.iter().map(|id| source.api_addr(*id)).collect();
    let saved = tokio::task::block_in_place(|| {
        alcor(&[
            "ctl",
            "--endpoints",
            &endpoints.join(","),
            "--timeout-ms",
            "20000",
            "-o",
            "json",
            "snapshot",
            "save",
            &file.display().to_string(),
        ])
    });
    assert!(
        saved.0,
        "snapshot save failed: {}\n{}",
        saved.2,
        source.logs()
    );
    tokio::time::sleep(Duration::from_millis(LOAD_MS)).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer");
    }
    let saved: serde_json::Value = serde_json::from_str(&saved.1).expect("save prints json");
    let revision = saved["revision"].as_u64().expect("revision");
    let sha256 = saved["sha256"].as_str().expect("sha256").to_string();
    assert_eq!(sha256.len(), 64, "{saved}");
    assert!(!part_file(&file).exists(), "the .part file is renamed away");
    let acked = acked.lock().expect("acked").clone();
    let before_save = acked.iter().filter(|a| a.2 < save_started).count();
    let after_save = acked.iter().filter(|a| a.1 > revision).count();
    assert!(
        before_save > 0 && after_save > 0,
        "the save ran under load: {before_save} creates acked before it, {after_save} after its revision {revision}"
    );

    let mut restored = ProcessCluster::prepare(3, &[]);
    let initial_cluster = restored.initial_cluster();
    for id in restored.ids() {
        let (ok, out) = restore(&file, &restored.data_dir(id), &initial_cluster, id);
        assert!(ok, "restore member {id}: {out}");
        assert!(out.contains(&format!("revision {revision}")), "{out}");
    }
    for id in restored.ids() {
        restored.spawn(id);
    }
    let new_members = restored.ids();
    restored.leader(&new_members).await;
    let restored_client = sdk(&restored);

    let expected = Everything::list(&client).await.at(revision);
    let got = Everything::list(&restored_client).await;
    // Every create acknowledged before the save began is in it.
    for (id, port_revision, at) in &acked {
        if *at < save_started {
            assert!(
                got.ports
                    .iter()
                    .any(|p| p.id == *id && p.revision == *port_revision),
                "port {id} (revision {port_revision}) acknowledged before the save is missing"
            );
        }
    }
    assert!(
        got.ports.len() > 2 + before_save,
        "{} ports",
        got.ports.len()
    );
    expected.assert_same(&got, revision);

    let next = restored_client
        .ports()
        .create(port(&uuid(0xa1), &uuid(0xa2), uuid(0xc0), "h1"))
        .await
        .expect("first write to the restored cluster");
    // Above the backup; only the new leaders' blank entries come between.
    assert!(
        next.revision > revision && next.revision <= revision + 3,
        "first write of the restored cluster at revision {}, backup at {revision}",
        next.revision
    );
}

fn part_file(file: &Path) -> PathBuf {
    let mut part = file.as_os_str().to_owned();
    part.push(".part");
    PathBuf::from(part)
}

/// The checked-in backup of the format fixtures (raft-core/tests/fixtures).
fn fixture_backup() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../raft-core/tests/fixtures/backup-v1.alcorbak"
    );
    std::fs::read(path).expect("backup fixture")
}

#[test]
fn a_truncated_or_corrupt_backup_is_refused_and_leaves_no_data_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = fixture_backup();
    let initial_cluster = "1=127.0.0.1:1/127.0.0.1:2";
    let mut flipped = good.clone();
    let middle = good.len() / 2;
    flipped[middle] ^= 0x20;
    let mut newer = good.clone();
    newer[8] = 9;
    let mut magic = good.clone();
    magic[0] = b'x';
    let cases: [(&str, &[u8], &str); 5] = [
        ("truncated", &good[..good.len() - 1], "truncated"),
        ("header-only", &good[..40], "truncated"),
        ("flipped", &flipped, "checksum mismatch"),
        ("newer", &newer, "newer than this build reads"),
        ("magic", &magic, "not an Alcor backup file"),
    ];
    for (name, bytes, error) in cases {
        let file = dir.path().join(format!("{name}.alcorbak"));
        std::fs::write(&file, bytes).expect("write");
        let data_dir = dir.path().join(format!("{name}-data"));
        let (ok, out) = restore(&file, &data_dir, initial_cluster, 1);
        assert!(!ok, "{name}: a damaged backup was restored: {out}");
        assert!(out.contains(error), "{name}: want {error:?} in: {out}");
        assert!(!data_dir.exists(), "{name}: a data dir was left behind");
    }
    // The intact file restores, once: a second restore into it is refused.
    let file = dir.path().join("good.alcorbak");
    std::fs::write(&file, &good).expect("write");
    let data_dir = dir.path().join("good-data");
    let (ok, out) = restore(&file, &data_dir, initial_cluster, 1);
    assert!(ok, "the intact backup: {out}");
    assert!(data_dir.is_dir());
    let (ok, out) = restore(&file, &data_dir, initial_cluster, 1);
    assert!(!ok && out.contains("not empty"), "{out}");
}
