//! The scheduling framework: the extension points plugins implement.
//!
//! kube-scheduler is a small loop around a list of plugins
//! (`pkg/scheduler/framework/interface.go`). For each pod, every *Filter*
//! plugin says whether one node can run it; every *Score* plugin ranks the
//! nodes that passed; the best node wins. A plugin answers with a
//! [`Status`]: a [`Code`] and human-readable reasons, which end up in the
//! pod's `FailedScheduling` event when no node fits.
//!
//! Most plugins look at one pod and one node and need nothing else. Some
//! need the whole cluster: PodTopologySpread must count, over every node,
//! the pods its constraints select before it can judge any single node.
//! Counting that once per node would be quadratic, so upstream gives such
//! plugins a *PreFilter* (and a *PreScore*) step that runs once per
//! scheduling cycle, stores what it computed in the cycle's
//! [`CycleState`], and lets Filter (and Score) read it. A PreFilter or
//! PreScore that finds nothing to do for the pod answers [`Code::Skip`],
//! and the framework then leaves that plugin's Filter or Score out for
//! this cycle. After every node is scored, a plugin may *normalize* its
//! raw scores (`NormalizeScore`), which PodTopologySpread needs to turn
//! "matching pods in this domain" into "higher is better".
//!
//! The cycle, as [`crate::schedule_one`] drives it:
//!
//! ```text
//! PreFilter (once) -> Filter (per node) -> PreScore (once)
//!     -> Score (per feasible node) -> NormalizeScore (once per plugin)
//!     -> weighted sum -> the best node
//! ```
//!
//! Upstream has more extension points (PostFilter for preemption, Reserve,
//! Permit, PreBind, Bind, PostBind) and lets PreFilter add or remove pods
//! from its state for preemption's what-ifs. tinykube keeps the points that
//! decide placement; the scheduling loop does the binding itself.

pub mod types;

use std::any::Any;
use std::collections::{BTreeSet, HashMap};

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
    /// From PreFilter or PreScore: the plugin has nothing to check or rank
    /// for this pod, so its Filter or Score is not run this cycle.
    Skip,
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

    pub fn skip() -> Self {
        Status { code: Code::Skip, reasons: Vec::new() }
    }

    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    /// Whether the status says the node (or, from PreFilter, every node)
    /// cannot run the pod, as upstream's `IsRejected`.
    pub fn is_rejected(&self) -> bool {
        matches!(self.code, Code::Unschedulable | Code::UnschedulableAndUnresolvable)
    }

    /// The reasons joined as upstream's `Status.Message()` does.
    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }
}

/// What the plugins of one scheduling cycle share (upstream
/// `CycleState`): data a PreFilter or PreScore computed for its Filter or
/// Score, under a key of the plugin's own, and which plugins skipped this
/// cycle. A fresh one is made for every pod.
#[derive(Default)]
pub struct CycleState {
    data: HashMap<&'static str, Box<dyn Any + Send + Sync>>,
    skip_filter_plugins: BTreeSet<&'static str>,
    skip_score_plugins: BTreeSet<&'static str>,
}

impl std::fmt::Debug for CycleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CycleState")
            .field("keys", &self.data.keys().collect::<BTreeSet<_>>())
            .field("skip_filter_plugins", &self.skip_filter_plugins)
            .field("skip_score_plugins", &self.skip_score_plugins)
            .finish()
    }
}

impl CycleState {
    /// Stores `value` under `key`, replacing what was there.
    pub fn write<T: Any + Send + Sync>(&mut self, key: &'static str, value: T) {
        self.data.insert(key, Box::new(value));
    }

    /// What was stored under `key`, if it is a `T`.
    pub fn read<T: Any>(&self, key: &str) -> Option<&T> {
        self.data.get(key).and_then(|v| v.downcast_ref())
    }
}

/// Every plugin has a name, the same as upstream's so a learner can grep
/// for it.
pub trait Plugin: Send + Sync {
    fn name(&self) -> &'static str;
}

/// A plugin that rules nodes out. Filter must be a pure function of the
/// pod, the node and what PreFilter stored, since the framework calls it
/// for every node.
pub trait FilterPlugin: Plugin {
    /// Runs once per cycle before any Filter, with every node of the
    /// snapshot; may store state for Filter or answer [`Code::Skip`]. Most
    /// plugins need nothing here.
    fn pre_filter(&self, _state: &mut CycleState, _pod: &PodInfo, _nodes: &[NodeInfo]) -> Status {
        Status::success()
    }

    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status;
}

/// One node's score from one plugin, as upstream's `NodeScore`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeScore {
    pub name: String,
    pub score: i64,
}

/// A plugin that ranks the nodes that passed every filter. After
/// [`ScorePlugin::normalize_score`] every score must lie between 0 and
/// [`MAX_NODE_SCORE`].
pub trait ScorePlugin: Plugin {
    /// Runs once per cycle before any Score, with the feasible nodes and
    /// every node of the snapshot (upstream plugins read the latter from
    /// the snapshot lister); may store state or answer [`Code::Skip`].
    fn pre_score(&self, _state: &mut CycleState, _pod: &PodInfo, _feasible: &[&NodeInfo], _all_nodes: &[NodeInfo]) -> Status {
        Status::success()
    }

    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status>;

    /// Rewrites the raw scores of all feasible nodes at once (upstream's
    /// `ScoreExtensions.NormalizeScore`); by default they stay as they are.
    fn normalize_score(&self, _state: &CycleState, _pod: &PodInfo, _scores: &mut [NodeScore]) -> Status {
        Status::success()
    }
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

    /// Runs every filter plugin's PreFilter, recording the ones that skip.
    /// Stops at the first that fails or rejects the pod outright, and
    /// returns that plugin's name with its status.
    pub fn run_pre_filter_plugins(&self, state: &mut CycleState, pod: &PodInfo, nodes: &[NodeInfo]) -> Result<(), (&'static str, Status)> {
        for plugin in &self.filters {
            let status = plugin.pre_filter(state, pod, nodes);
            match status.code {
                Code::Success => {}
                Code::Skip => {
                    state.skip_filter_plugins.insert(plugin.name());
                }
                _ => return Err((plugin.name(), status)),
            }
        }
        Ok(())
    }

    /// Runs the filters in order and stops at the first that rejects the
    /// node, as upstream's `RunFilterPlugins` does: a node contributes one
    /// plugin's reasons to the diagnosis, so the order decides which reason
    /// a user sees. Returns the rejecting plugin's name with its status.
    pub fn run_filter_plugins(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), (&'static str, Status)> {
        for plugin in self.filters.iter().filter(|p| !state.skip_filter_plugins.contains(p.name())) {
            let status = plugin.filter(state, pod, node);
            if !status.is_success() {
                return Err((plugin.name(), status));
            }
        }
        Ok(())
    }

    /// Runs every score plugin's PreScore, recording the ones that skip.
    pub fn run_pre_score_plugins(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        feasible: &[&NodeInfo],
        all_nodes: &[NodeInfo],
    ) -> Result<(), Status> {
        for (plugin, _) in &self.scores {
            let status = plugin.pre_score(state, pod, feasible, all_nodes);
            match status.code {
                Code::Success => {}
                Code::Skip => {
                    state.skip_score_plugins.insert(plugin.name());
                }
                _ => return Err(Status::error(format!("running PreScore plugin {:?}: {}", plugin.name(), status.message()))),
            }
        }
        Ok(())
    }

    /// Every feasible node's total: each plugin scores every node, then
    /// normalizes its scores, which must then lie in 0..=[`MAX_NODE_SCORE`];
    /// the totals are the weighted sums (upstream `RunScorePlugins`). The
    /// result is in the order of `nodes`.
    pub fn run_score_plugins(&self, state: &CycleState, pod: &PodInfo, nodes: &[&NodeInfo]) -> Result<Vec<i64>, Status> {
        let mut totals = vec![0; nodes.len()];
        for (plugin, weight) in self.scores.iter().filter(|(p, _)| !state.skip_score_plugins.contains(p.name())) {
            let mut scores = Vec::with_capacity(nodes.len());
            for node in nodes {
                scores.push(NodeScore { name: node.name().to_string(), score: plugin.score(state, pod, node)? });
            }
            let status = plugin.normalize_score(state, pod, &mut scores);
            if !status.is_success() {
                return Err(Status::error(format!("running NormalizeScore plugin {:?}: {}", plugin.name(), status.message())));
            }
            for (total, s) in totals.iter_mut().zip(&scores) {
                if !(0..=MAX_NODE_SCORE).contains(&s.score) {
                    return Err(Status::error(format!(
                        "plugin {:?} returns an invalid score {}, it should in the range of [0, {MAX_NODE_SCORE}] after normalizing",
                        plugin.name(),
                        s.score
                    )));
                }
                *total += s.score * weight;
            }
        }
        Ok(totals)
    }

    pub fn has_score_plugins(&self) -> bool {
        !self.scores.is_empty()
    }
}
