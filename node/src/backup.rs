//! `alcor ctl snapshot save FILE` and `alcor snapshot restore FILE`: the
//! backup file of the whole state (format in `alcor_raft_core::backup`).
//!
//! Save streams the file from a member into `FILE.part`, fsyncs it, reads
//! it back and checks it completely (header, length, checksum, the state
//! decodes), and only then renames it to `FILE`: a `FILE` that exists is
//! whole. Restore checks the file the same way before it creates anything,
//! then builds one member's data directory of a new cluster
//! (`alcor_raft_core::storage::restore_data_dir`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alcor_client::Client;
use alcor_raft_core::backup;
use alcor_raft_core::limits::BACKUP_FILE_BYTES_MAX;
use anyhow::Context;
use serde_json::json;

use crate::cli::{OutputFormat, SnapshotRestoreArgs};

/// `FILE.part`, where a save writes before the rename.
fn part_path(file: &Path) -> PathBuf {
    let mut part = file.as_os_str().to_owned();
    part.push(".part");
    PathBuf::from(part)
}

/// Fsyncs the directory holding `file`, so a rename into it is durable.
fn sync_parent(file: &Path) -> anyhow::Result<()> {
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync {}", parent.display()))
}

/// Reads a backup file whole, refusing one above `BACKUP_FILE_BYTES_MAX`.
fn read_backup_file(file: &Path) -> anyhow::Result<Vec<u8>> {
    let len = std::fs::metadata(file)
        .with_context(|| format!("read {}", file.display()))?
        .len();
    if len > BACKUP_FILE_BYTES_MAX {
        anyhow::bail!(
            "{}: {len} bytes is more than a backup may hold ({BACKUP_FILE_BYTES_MAX})",
            file.display()
        );
    }
    std::fs::read(file).with_context(|| format!("read {}", file.display()))
}

/// `alcor ctl snapshot save FILE`.
pub(crate) async fn save(
    client: &Client,
    file: &Path,
    timeout: Duration,
    format: OutputFormat,
) -> anyhow::Result<()> {
    let part = part_path(file);
    let saved = tokio::time::timeout(timeout, download(client, &part))
        .await
        .unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "the save did not finish within {} ms (raise --timeout-ms)",
                timeout.as_millis()
            ))
        })
        .and_then(|()| {
            let bytes = read_backup_file(&part)?;
            let checked = backup::decode(&bytes)
                .with_context(|| format!("the file received ({}) is not whole", part.display()))?;
            std::fs::rename(&part, file)
                .with_context(|| format!("rename {} to {}", part.display(), file.display()))?;
            sync_parent(file)?;
            Ok((checked.header, bytes.len()))
        });
    let (header, n_bytes) = match saved {
        Ok(saved) => saved,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    let sha256 = header.sha256_hex();
    match format {
        OutputFormat::Json => out!(
            "{}",
            json!({
                "file": file.display().to_string(),
                "revision": header.revision,
                "sha256": sha256,
                "bytes": n_bytes,
            })
        ),
        OutputFormat::Table => out!(
            "saved {}: revision {}, sha256 {sha256}, {n_bytes} bytes",
            file.display(),
            header.revision
        ),
    }
    Ok(())
}

/// Streams the backup into `part` and fsyncs it.
async fn download(client: &Client, part: &Path) -> anyhow::Result<()> {
    let mut download = client.cluster().save_snapshot().await?;
    let mut out =
        std::fs::File::create(part).with_context(|| format!("create {}", part.display()))?;
    let mut n_bytes = 0u64;
    while let Some(chunk) = download.next_chunk().await? {
        n_bytes = n_bytes.saturating_add(chunk.len() as u64);
        if n_bytes > BACKUP_FILE_BYTES_MAX {
            anyhow::bail!(
                "the member sent more than a backup may hold ({BACKUP_FILE_BYTES_MAX} bytes)"
            );
        }
        out.write_all(&chunk)
            .with_context(|| format!("write {}", part.display()))?;
    }
    out.sync_all()
        .with_context(|| format!("fsync {}", part.display()))
}

/// `alcor snapshot restore FILE --data-dir D --initial-cluster ... --id N`.
pub(crate) fn restore(args: &SnapshotRestoreArgs) -> anyhow::Result<()> {
    let members = crate::initial_cluster::parse(&args.initial_cluster)
        .map_err(|e| anyhow::anyhow!("--initial-cluster: {e}"))?;
    if !members.contains_key(&args.id) {
        anyhow::bail!("--id {} is not a member of --initial-cluster", args.id);
    }
    let bytes = read_backup_file(&args.file)?;
    let checked = backup::decode(&bytes)
        .with_context(|| format!("{} is not a usable backup", args.file.display()))?;
    drop(bytes);
    alcor_raft_core::storage::restore_data_dir(&args.data_dir, &checked, &members)?;
    out!(
        "restored revision {} (sha256 {}) into {} for member {} of {}",
        checked.header.revision,
        checked.header.sha256_hex(),
        args.data_dir.display(),
        args.id,
        members.len()
    );
    Ok(())
}
