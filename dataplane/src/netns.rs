//! Network namespaces: create, enter, list and remove the agent's port
//! namespaces. A namespace is entered by a thread of its own that
//! `setns`es (only that thread moves) and opens its own netlink
//! connection there; the agent's other threads stay where they are.
//!
//! Namespaces are bind mounts under `/run/netns` (as `ip netns` makes
//! them), so they outlive the agent: a restart finds them and keeps them.

use std::fs::File;
use std::future::Future;
use std::path::Path;

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use rtnetlink::{Handle, NetworkNamespace, NETNS_PATH};

use crate::error::DataplaneError;

/// The path of namespace `name`.
pub(crate) fn path(name: &str) -> String {
    format!("{NETNS_PATH}{name}")
}

/// Opens namespace `name` (to move a link into it).
pub(crate) fn open(name: &str) -> Result<File, DataplaneError> {
    File::open(path(name)).map_err(|e| namespace_error(name, format!("open: {e}")))
}

/// The names under `/run/netns` that start with `prefix`, sorted.
pub(crate) fn list(prefix: &str) -> Result<Vec<String>, DataplaneError> {
    let entries = match std::fs::read_dir(NETNS_PATH) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(namespace_error(NETNS_PATH, format!("list: {e}"))),
    };
    let mut names = Vec::new();
    for entry in entries.take(crate::limits::DUMP_OBJECTS_MAX) {
        let entry = entry.map_err(|e| namespace_error(NETNS_PATH, format!("list: {e}")))?;
        if let Some(name) = entry.file_name().to_str() {
            if name.starts_with(prefix) {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Whether namespace `name` exists.
pub(crate) fn exists(name: &str) -> bool {
    Path::new(&path(name)).exists()
}

/// Removes namespace `name` (its links go with it).
pub(crate) async fn remove(name: &str) -> Result<(), DataplaneError> {
    NetworkNamespace::del(name)
        .await
        .map_err(|e| namespace_error(name, format!("remove: {e}")))
}

/// Runs `work` with a netlink handle inside namespace `name`, on a thread
/// of its own; with `create`, makes the namespace first.
pub(crate) async fn run_in<F, Fut, T>(
    name: &str,
    create: bool,
    work: F,
) -> Result<T, DataplaneError>
where
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, DataplaneError>>,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let owned = name.to_string();
    std::thread::Builder::new()
        .name("alcor-netns".to_string())
        .spawn(move || {
            let result = enter(&owned, create).and_then(|()| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(DataplaneError::Connection)?;
                runtime.block_on(async {
                    let (connection, handle, _) =
                        rtnetlink::new_connection().map_err(DataplaneError::Connection)?;
                    let connection = tokio::spawn(connection);
                    let result = work(handle).await;
                    connection.abort();
                    result
                })
            });
            let _ = tx.send(result);
        })
        .map_err(|e| namespace_error(name, format!("thread: {e}")))?;
    rx.await
        .map_err(|_| namespace_error(name, "the namespace thread panicked".to_string()))?
}

/// Moves the calling thread into namespace `name`, creating it first with
/// `create`.
fn enter(name: &str, create: bool) -> Result<(), DataplaneError> {
    if !create {
        let file = open(name)?;
        return nix::sched::setns(&file, CloneFlags::CLONE_NEWNET)
            .map_err(|e| namespace_error(name, format!("setns: {e}")));
    }
    // The directory as a shared mount, and an empty file to bind onto
    // (rtnetlink's own steps, without its fork).
    NetworkNamespace::child_process_create_ns(name)
        .map_err(|e| namespace_error(name, format!("create: {e}")))?;
    let target = path(name);
    let made = nix::sched::unshare(CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("unshare: {e}"))
        .and_then(|()| {
            // This thread's namespace: /proc/self names the process's.
            nix::mount::mount(
                Some("/proc/thread-self/ns/net"),
                target.as_str(),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| format!("bind mount: {e}"))
        });
    if let Err(reason) = made {
        let _ = std::fs::remove_file(&target);
        return Err(namespace_error(name, reason));
    }
    Ok(())
}

fn namespace_error(name: &str, reason: String) -> DataplaneError {
    DataplaneError::Namespace {
        name: name.to_string(),
        reason,
    }
}
