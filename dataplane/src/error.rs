//! Errors of the kernel side. The plan cannot fail: what it cannot plan
//! is a per-port reason in [`crate::Plan::failed`].

/// A netlink, namespace or thread failure.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// A netlink request failed.
    #[error("netlink: {what}: {source}")]
    Netlink {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: rtnetlink::Error,
    },
    /// A netlink connection could not be opened.
    #[error("netlink connection: {0}")]
    Connection(#[source] std::io::Error),
    /// A network namespace could not be created, entered or removed.
    #[error("network namespace {name}: {reason}")]
    Namespace {
        /// The namespace.
        name: String,
        /// Why.
        reason: String,
    },
    /// A kernel dump returned more than `DUMP_OBJECTS_MAX` objects.
    #[error("{what}: more than {max} objects in one dump")]
    DumpTooLong {
        /// What was dumped.
        what: &'static str,
        /// The bound.
        max: usize,
    },
    /// `nft` failed or printed what cannot be read.
    #[error("nftables: {what}: {reason}")]
    Nftables {
        /// What was being done.
        what: &'static str,
        /// Why (nft's own message).
        reason: String,
    },
    /// A port could not join its VPC's bridge: the bridge holds as many
    /// ports as the kernel allows.
    #[error(
        "{port}: its VPC's bridge on this host is full: a Linux bridge holds at most {max} \
         ports (BR_MAX_PORTS), one of them the VPC's VXLAN device"
    )]
    BridgeFull {
        /// The port's host end.
        port: String,
        /// [`crate::limits::BRIDGE_PORTS_MAX`].
        max: usize,
    },
    /// An object was expected and is not there.
    #[error("{0} not found")]
    Missing(String),
}

impl DataplaneError {
    /// A netlink error while doing `what`.
    pub(crate) fn netlink(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Self {
        let what = what.into();
        move |source| DataplaneError::Netlink { what, source }
    }
}
