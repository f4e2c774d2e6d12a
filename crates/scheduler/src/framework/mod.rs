//! The scheduling framework: the extension points plugins implement.
//!
//! kube-scheduler is a small loop around a list of plugins
//! (`pkg/scheduler/framework/interface.go`). For each pod, every *Filter*
//! plugin says whether one node can run it; every *Score* plugin ranks the
//! nodes that passed; the best node wins. A plugin answers with a
//! [`Status`]: a [`Code`] and human-readable reasons, which end up in the
//! pod's `FailedScheduling` event when no node fits.
//!
//! Upstream has more extension points (PreFilter, PostFilter for
//! preemption, Reserve, Permit, PreBind, Bind, PostBind). tinykube keeps the
//! two that decide placement; the scheduling loop does the binding itself.

pub mod types;

pub use types::{Diagnosis, FitError, NodeInfo, PodInfo, Resource};

/// The largest score a Score plugin may give a node (upstream `MaxNodeScore`).
pub const MAX_NODE_SCORE: i64 = 100;

/// What a plugin decided, as upstream's `framework.Code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The node is fine for the pod.
    Success,
    /// Something went wrong that is not the pod's or node's fault (a
    /// malformed quantity, say); the pod is retried after its backoff.
    Error,
    /// The node cannot run the pod now, but might after other pods go away
    /// (preemption could help, upstream).
    Unschedulable,
    /// The node cannot run the pod, and removing pods would not change
    /// that (a label, a taint, a name).
    UnschedulableAndUnresolvable,
}

/// A plugin's answer: a code and the reasons behind it. Reasons are the
/// exact strings counted in "0/3 nodes are available: 2 Insufficient cpu."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub reasons: Vec<String>,
}

impl Status {
    pub fn success() -> Self {
        Status { code: Code::Success, reasons: Vec::new() }
    }

    pub fn new(code: Code, reason: impl Into<String>) -> Self {
        Status { code, reasons: vec![reason.into()] }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Status::new(Code::Error, message)
    }

    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    /// The reasons joined as upstream's `Status.Message()` does.
    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }
}

/// Every plugin has a name, the same as upstream's so a learner can grep
/// for it.
pub trait Plugin: Send + Sync {
    fn name(&self) -> &'static str;
}

/// A plugin that rules nodes out. It must be a pure function of the pod and
/// the node's state, since the framework calls it for every node.
pub trait FilterPlugin: Plugin {
    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Status;
}

/// A plugin that ranks the nodes that passed every filter, from 0 to
/// [`MAX_NODE_SCORE`].
pub trait ScorePlugin: Plugin {
    fn score(&self, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status>;
}

/// One scheduling profile: the plugins to run, in order, and each score
/// plugin's weight. Upstream calls this a `Framework` built from a
/// `KubeSchedulerProfile`; tinykube has the one default profile.
pub struct Framework {
    filters: Vec<Box<dyn FilterPlugin>>,
    scores: Vec<(Box<dyn ScorePlugin>, i64)>,
}

impl std::fmt::Debug for Framework {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Framework")
            .field("filters", &self.filters.iter().map(|p| p.name()).collect::<Vec<_>>())
            .field("scores", &self.scores.iter().map(|(p, w)| (p.name(), *w)).collect::<Vec<_>>())
            .finish()
    }
}

impl Framework {
    pub fn new(filters: Vec<Box<dyn FilterPlugin>>, scores: Vec<(Box<dyn ScorePlugin>, i64)>) -> Self {
        Framework { filters, scores }
    }

    /// Runs the filters in order and stops at the first that rejects the
    /// node, as upstream's `RunFilterPlugins` does: a node contributes one
    /// plugin's reasons to the diagnosis, so the order decides which reason
    /// a user sees. Returns the rejecting plugin's name with its status.
    pub fn run_filter_plugins(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), (&'static str, Status)> {
        for plugin in &self.filters {
            let status = plugin.filter(pod, node);
            if !status.is_success() {
                return Err((plugin.name(), status));
            }
        }
        Ok(())
    }

    /// The weighted sum of every score plugin's score for the node.
    pub fn run_score_plugins(&self, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let mut total = 0;
        for (plugin, weight) in &self.scores {
            total += plugin.score(pod, node)? * weight;
        }
        Ok(total)
    }

    pub fn has_score_plugins(&self) -> bool {
        !self.scores.is_empty()
    }
}
