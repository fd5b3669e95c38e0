//! The two commands, in order: list (and read what the caller may), then decide, then act.

use md5::{Digest, Md5};

use crate::aws::{AwsClients, AwsErrorKind};

use super::StateError;
use super::calls::{
    HeldLock, TakeLock, copy_version, list_versions, put_digest, read_version, release_lock, take_lock,
};
use super::decide::{Refusal, RestoreCheck, StateHead, Version, check_restore, format_versions, state_head};
use super::lock::{RestoreLockInfo, lock_info, who};
use super::target::{Sse, StateTarget};

/// Serial and lineage of one version, or why the caller cannot see them.
async fn head_of(aws: &AwsClients, t: &StateTarget, v: &Version) -> Result<(StateHead, Option<Vec<u8>>), String> {
    match read_version(&aws.s3, t, &v.id).await {
        Ok(content) => Ok((state_head(&content), Some(content))),
        Err(e) if e.kind == AwsErrorKind::AccessDenied => Err(format!(
            "your credentials may list versions but not read or decrypt them ({}: {}); \
             s3:GetObject on the state and kms:Decrypt on the backend's key are needed",
            e.code, e.message
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// How many versions newer than the one restored are read at most to find the state's
/// lineage (each is a GetObject): garbage is one or a few versions, not dozens.
const MAX_LINEAGE_READS: usize = 20;

/// `state versions`: the version table.
///
/// # Errors
///
/// [`StateError::Aws`] when the versions cannot be listed.
pub async fn versions(aws: &AwsClients, t: &StateTarget) -> Result<String, StateError> {
    let (mut list, truncated) = list_versions(&aws.s3, t).await?;
    for v in list.iter_mut().filter(|v| !v.delete_marker) {
        v.head = head_of(aws, t, v).await.map(|(h, _)| h);
    }
    Ok(format_versions(&t.bucket, &t.key, &list, truncated))
}

/// What a restore may go past.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestoreOptions {
    /// `--force`: a lock someone else holds (left alone) and the lineage checks.
    pub force: bool,
    /// `--skip-lineage-check`: the lineage checks only; the lock is still taken and a held
    /// one still refuses (the way for an OpenTofu-encrypted state, whose lineage the CLI
    /// cannot read).
    pub skip_lineage: bool,
}

/// `state restore --version ID`: what it did, in words. The state's lock is taken first, as
/// Terraform takes it, and held until the copy and the digest are written: what is checked
/// (the lineage, the current version) is what is replaced, and no run writes meanwhile.
///
/// # Errors
///
/// [`StateError::NoSuchVersion`] or [`StateError::Refused`] (nothing written),
/// [`StateError::Aws`], [`StateError::DigestNotWritten`] (the copy was made, the digest is
/// stale), [`StateError::Interrupted`] (Ctrl-C; the lock is released) and
/// [`StateError::LockLeft`] when the lock could not be released after any of these.
pub async fn restore(
    aws: &AwsClients,
    t: &StateTarget,
    version: &str,
    opts: RestoreOptions,
) -> Result<String, StateError> {
    let force = opts.force;
    let id = uuid::Uuid::new_v4().to_string();
    let who = who(
        std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).ok(),
        std::env::var("HOSTNAME").ok().or_else(|| std::fs::read_to_string("/etc/hostname").ok()),
    );
    let created = k8s_openapi::jiff::Timestamp::now().to_string();
    let info = lock_info(&RestoreLockInfo { id: &id, who: &who, path: &t.lock_id(), version, created: &created });
    let mut taken = take_lock(&aws.s3, &aws.dynamodb, t, &info).await?;
    if taken == TakeLock::Busy(None) {
        // Held when written, gone when read: once more.
        taken = take_lock(&aws.s3, &aws.dynamodb, t, &info).await?;
    }
    let (held, busy) = match taken {
        TakeLock::Taken(held) => (held, None),
        // Forced: restored without the lock (and said so).
        TakeLock::Busy(holder) if force => (HeldLock::default(), Some(holder_or_gone(holder))),
        TakeLock::Busy(holder) => return Err(Refusal::Locked(holder_or_gone(holder)).into()),
    };
    if held != HeldLock::default() {
        // On stderr at once: if this command is killed, the lock to break is known.
        eprintln!(
            "holding the state lock {id} (if this command is interrupted, break it with `terraform force-unlock {id}` \
             or the tfstate.dev/force-unlock annotation)"
        );
    }
    // Ctrl-C ends the restore but not before the lock is released.
    let done = tokio::select! {
        done = restore_locked(aws, t, version, opts, busy) => done,
        _ = tokio::signal::ctrl_c() => Err(StateError::Interrupted),
    };
    let released = release_lock(&aws.s3, &aws.dynamodb, t, &held, &info).await;
    let mut out = match (done, &released) {
        (Ok(out), _) => out,
        // Failed, and the lock stays: say which one, or runners wait on it for good.
        (Err(e), Err(why)) if held != HeldLock::default() => {
            return Err(StateError::LockLeft { after: Box::new(e), id, why: why.to_string() });
        }
        (Err(e), _) => return Err(e),
    };
    if held != HeldLock::default() {
        match released {
            Ok(not_ours) if not_ours.is_empty() => {
                out.push_str(&format!("held the state lock {id} during the restore, and released it\n"));
            }
            Ok(not_ours) => out.push_str(&format!(
                "warning: the state lock {id} was replaced during the restore ({}): left as it is\n",
                not_ours.join(", ")
            )),
            Err(e) => out.push_str(&format!(
                "warning: the restore is done, but its state lock {id} could not be released ({e}): \
                 break it with `terraform force-unlock {id}` or the tfstate.dev/force-unlock annotation\n"
            )),
        }
    }
    Ok(out)
}

/// The holder of a lock, or that it was released before it could be read.
fn holder_or_gone(holder: Option<String>) -> String {
    holder.unwrap_or_else(|| "held twice in a row, released each time before it could be read".into())
}

/// The restore proper, under the lock (or forced past `lock`, the holder of a lock that could
/// not be taken).
async fn restore_locked(
    aws: &AwsClients,
    t: &StateTarget,
    version: &str,
    opts: RestoreOptions,
    lock: Option<String>,
) -> Result<String, StateError> {
    let RestoreOptions { force, skip_lineage } = opts;
    let (mut list, _) = list_versions(&aws.s3, t).await?;
    let no_such =
        || StateError::NoSuchVersion { version: version.to_owned(), bucket: t.bucket.clone(), key: t.key.clone() };
    let at = list.iter().position(|v| v.id == version).ok_or_else(no_such)?;
    let mut content = None;
    if !list[at].delete_marker {
        let read = head_of(aws, t, &list[at]).await;
        list[at].head = read.clone().map(|(h, _)| h);
        content = read.ok().and_then(|(_, c)| c);
    }
    // The state's lineage: the newest version after the target that has one (a garbage
    // current version has none). Read newest first, stopping at the first lineage found;
    // at most MAX_LINEAGE_READS versions are read.
    let (newer, rest) = list.split_at_mut(at);
    for v in newer.iter_mut().filter(|v| !v.delete_marker).take(MAX_LINEAGE_READS) {
        v.head = head_of(aws, t, v).await.map(|(h, _)| h);
        if matches!(&v.head, Ok(StateHead { lineage: Some(_), .. })) {
            break;
        }
    }
    let target = &rest[0];
    check_restore(&RestoreCheck { target, newer, lock: lock.clone(), force, skip_lineage })?;

    let new_id = copy_version(&aws.s3, t, version).await?;
    let old = newer.iter().chain(rest.iter()).find(|v| v.latest).map_or_else(|| "(none)".to_owned(), |v| v.id.clone());
    let sse = match &t.sse {
        Sse::Kms(key) => format!("SSE-KMS with {key}"),
        Sse::Aes256 => "SSE-S3 (AES256)".to_owned(),
    };
    let head = match &target.head {
        Ok(StateHead { serial: Some(s), lineage: Some(l) }) => format!("serial {s}, lineage {l}"),
        _ => "serial and lineage unknown".to_owned(),
    };
    let mut out = format!(
        "restored s3://{}/{}: current version {old} -> {new_id}, a server-side copy of version {version} ({head}), \
         encrypted {sse}; no version was deleted\n",
        t.bucket, t.key
    );
    if skip_lineage && !force {
        out.push_str("warning: the lineage was not checked (--skip-lineage-check)\n");
    }
    if force && lock.is_some() {
        out.push_str(&format!("warning: restored while locked (--force): {}\n", lock.unwrap_or_default()));
    }
    if let Some(table) = &t.lock_table {
        // Terraform checks the state against this digest on every read.
        match content {
            Some(content) => {
                let digest: String = Md5::digest(&content).iter().map(|b| format!("{b:02x}")).collect();
                if let Err(e) = put_digest(&aws.dynamodb, table, t, &digest).await {
                    // The copy is done: say so, and what is left to do by hand.
                    return Err(StateError::DigestNotWritten {
                        done: out,
                        table: table.clone(),
                        id: t.digest_id(),
                        digest,
                        why: e.to_string(),
                    });
                }
                out.push_str(&format!("updated Terraform's digest {} in {table} to {digest}\n", t.digest_id()));
            }
            None => out.push_str(&format!(
                "warning: could not read the restored version, so Terraform's digest {} in {table} was not updated: \
                 set its Digest to the MD5 of the restored state, or Terraform will refuse it\n",
                t.digest_id()
            )),
        }
    }
    Ok(out)
}
