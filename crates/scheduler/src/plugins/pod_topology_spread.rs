//! PodTopologySpread: spread a workload's pods evenly over the cluster's
//! *topology domains* — its nodes, its zones, its racks.
//!
//! A pod asks for it in `spec.topologySpreadConstraints`. Each constraint
//! names a node label, its `topologyKey` (`kubernetes.io/hostname`,
//! `topology.kubernetes.io/zone`, ...); every value of that label among the
//! nodes is one *domain*. The constraint's `labelSelector` says which pods
//! count — usually the pod's own siblings. The *skew* of a domain is how
//! many more matching pods it holds than the emptiest domain (the *global
//! minimum*), and `maxSkew` bounds it:
//!
//! ```text
//! zone a: 2 pods   zone b: 1 pod   zone c: 1 pod       maxSkew: 1
//! placing the next pod in a gives a 3 - 1 = 2 skew: too much; b or c: fine
//! ```
//!
//! What happens when no domain keeps the skew within bounds is the
//! constraint's `whenUnsatisfiable`: `DoNotSchedule` makes it a hard rule,
//! checked by [`filtering`] (the pod stays pending rather than pile up), and
//! `ScheduleAnyway` a preference, applied by [`scoring`] (nodes in domains
//! with fewer matching pods score higher).
//!
//! The finer points, as upstream has them:
//!
//! - **Which pods count**: pods in the pod's namespace whose labels match
//!   the selector, on nodes that carry the topology key, not terminating
//!   (a pod with a `deletionTimestamp` is on its way out). A constraint
//!   without a `labelSelector` selects no pod. `matchLabelKeys` adds the
//!   pod's own values of those labels to the selector, so that
//!   `pod-template-hash` spreads each Deployment revision on its own.
//! - **Which nodes count** (and so which domains exist):
//!   `nodeAffinityPolicy: Honor` (the default) counts only nodes the pod's
//!   `nodeSelector` and required node affinity admit; `nodeTaintsPolicy:
//!   Honor` counts only nodes whose `NoSchedule`/`NoExecute` taints the pod
//!   tolerates (the default, `Ignore`, counts tainted nodes too). For hard
//!   constraints, a node must carry the keys of *all* of them to count.
//! - **`minDomains`** (hard constraints only): while fewer domains than
//!   that exist, the global minimum is taken as 0, so pods keep going to
//!   new domains — a node autoscaler's cue to add nodes.
//! - **System defaults**: a pod with no constraints of its own that belongs
//!   to a Service, ReplicaSet or StatefulSet is spread softly anyway —
//!   `maxSkew` 3 over hostnames and 5 over zones, `ScheduleAnyway` — with a
//!   selector made of those workloads' selectors ([`default_selector`]).
//!
//! Where tinykube simplifies: the constraints are counted with plain maps
//! instead of upstream's two "critical paths", which exist so preemption
//! can add and remove pods cheaply, and tinykube does not preempt.
//! ReplicationControllers are not served, so they do not feed the default
//! selector. The defaulting is always upstream's `System` kind; there is no
//! scheduler configuration to list other default constraints.
//!
//! # Layout
//! - this module: the constraints as the plugin reads them
//!   ([`Constraint`]), how pods and nodes are counted, the system defaults,
//!   and the plugin's registration.
//! - [`filtering`]: PreFilter and Filter for `DoNotSchedule`.
//! - [`scoring`]: PreScore, Score and NormalizeScore for `ScheduleAnyway`.

pub mod filtering;
pub mod scoring;

use std::collections::BTreeMap;

use api::labels::{Op, Requirement, Selector};
use client::informer::Cache;
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod, Service, TopologySpreadConstraint};

use super::node_affinity;
use super::taint_toleration::find_untolerated_taint;
use crate::framework::{CycleState, FilterPlugin, NodeInfo, NodeScore, Plugin, PodInfo, ScorePlugin, Status};

pub const NAME: &str = "PodTopologySpread";
/// A node whose domain would be skewed too much (upstream
/// `ErrReasonConstraintsNotMatch`).
pub const ERR_REASON_CONSTRAINTS_NOT_MATCH: &str = "node(s) didn't match pod topology spread constraints";
/// A node without a hard constraint's topology key (upstream
/// `ErrReasonNodeLabelNotMatch`).
pub const ERR_REASON_NODE_LABEL_NOT_MATCH: &str = "node(s) didn't match pod topology spread constraints (missing required label)";

/// The well-known label every node carries with its own name, so that each
/// node is a domain of its own.
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
/// The well-known label of a node's zone.
pub const LABEL_TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";

/// `whenUnsatisfiable` values.
pub const DO_NOT_SCHEDULE: &str = "DoNotSchedule";
pub const SCHEDULE_ANYWAY: &str = "ScheduleAnyway";

/// `nodeAffinityPolicy` and `nodeTaintsPolicy`: `Honor` counts only the
/// nodes the pod could be placed on by that rule; `Ignore` counts them all.
pub const NODE_INCLUSION_POLICY_HONOR: &str = "Honor";

/// The constraints a pod without its own gets, if a workload selects it
/// (upstream `systemDefaultConstraints`).
pub fn system_default_constraints() -> Vec<TopologySpreadConstraint> {
    let soft = |key: &str, max_skew| TopologySpreadConstraint {
        topology_key: key.into(),
        when_unsatisfiable: SCHEDULE_ANYWAY.into(),
        max_skew,
        ..Default::default()
    };
    vec![soft(LABEL_HOSTNAME, 3), soft(LABEL_TOPOLOGY_ZONE, 5)]
}

/// One constraint as the plugin uses it, its selector parsed and its
/// defaults filled in (upstream's internal `topologySpreadConstraint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub max_skew: i32,
    pub topology_key: String,
    /// Which pods count; `None` selects none, as a missing `labelSelector`.
    pub selector: Option<Selector>,
    /// 1 when unset: with at least one domain the minimum is real.
    pub min_domains: i32,
    /// Count only nodes the pod's node selector and required affinity
    /// admit (`nodeAffinityPolicy: Honor`, the default).
    pub honor_node_affinity: bool,
    /// Count only nodes whose scheduling taints the pod tolerates
    /// (`nodeTaintsPolicy: Honor`; the default is `Ignore`).
    pub honor_node_taints: bool,
}

impl Constraint {
    /// Whether a pod with these labels counts for this constraint.
    pub fn selects(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        self.selector.as_ref().is_some_and(|s| s.matches_opt(labels))
    }

    /// Whether `node`'s pods and domain count for `pod` under the
    /// constraint's node inclusion policies (upstream
    /// `matchNodeInclusionPolicies`).
    pub fn includes_node(&self, pod: &PodInfo, node: &Node) -> bool {
        if self.honor_node_affinity && !node_affinity::fits(&pod.pod, node) {
            return false;
        }
        if self.honor_node_taints {
            let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default();
            if find_untolerated_taint(taints, pod.tolerations()).is_some() {
                return false;
            }
        }
        true
    }
}

/// The pod's constraints with `whenUnsatisfiable` equal to `action`, ready
/// for counting (upstream `filterTopologySpreadConstraints`). The values of
/// the pod's labels named in `matchLabelKeys` join the selector as
/// `key=value` requirements; a key the pod lacks is left out. An invalid
/// `labelSelector` is an error.
pub fn constraints_for(
    specs: &[TopologySpreadConstraint],
    pod_labels: Option<&BTreeMap<String, String>>,
    action: &str,
) -> Result<Vec<Constraint>, String> {
    let mut constraints = Vec::new();
    for c in specs.iter().filter(|c| c.when_unsatisfiable == action) {
        let mut selector = c.label_selector.as_ref().map(Selector::from_label_selector).transpose()?;
        let own: Vec<Requirement> = c
            .match_label_keys
            .iter()
            .flatten()
            .filter_map(|key| pod_labels.and_then(|l| l.get(key)).map(|value| equals(key, value)))
            .collect();
        if !own.is_empty() {
            // Upstream builds the merged selector from the pod's values and
            // adds the selector's requirements, if it has any: a constraint
            // without a labelSelector then selects by the pod's values alone.
            let mut requirements = own;
            requirements.extend(selector.take().map(|s| s.requirements).unwrap_or_default());
            // Sorted by key, as upstream's selectors keep their requirements.
            requirements.sort_by(|a, b| a.key.cmp(&b.key));
            selector = Some(Selector { requirements });
        }
        constraints.push(Constraint {
            max_skew: c.max_skew,
            topology_key: c.topology_key.clone(),
            selector,
            min_domains: c.min_domains.unwrap_or(1),
            honor_node_affinity: c.node_affinity_policy.as_deref().is_none_or(|p| p == NODE_INCLUSION_POLICY_HONOR),
            honor_node_taints: c.node_taints_policy.as_deref() == Some(NODE_INCLUSION_POLICY_HONOR),
        });
    }
    Ok(constraints)
}

fn equals(key: &str, value: &str) -> Requirement {
    Requirement { key: key.to_string(), op: Op::Equals, values: vec![value.to_string()] }
}

/// Whether the node carries the topology key of every constraint (upstream
/// `nodeLabelsMatchSpreadConstraints`).
pub fn node_has_all_topology_keys(node: &NodeInfo, constraints: &[Constraint]) -> bool {
    constraints.iter().all(|c| node.labels().contains_key(&c.topology_key))
}

/// How many of `pods` count for `constraint`: same namespace as the pod
/// being scheduled, selected, and not terminating (upstream
/// `countPodsMatchSelector`).
pub fn count_pods_match_selector(pods: &[PodInfo], constraint: &Constraint, namespace: Option<&str>) -> i64 {
    pods.iter()
        .map(|p| &p.pod.metadata)
        .filter(|m| m.deletion_timestamp.is_none() && m.namespace.as_deref() == namespace)
        .filter(|m| constraint.selects(m.labels.as_ref()))
        .count() as i64
}

/// The workloads system-default spreading looks at to find a pod's
/// siblings: the informer caches of Services, ReplicaSets and StatefulSets
/// (upstream's listers). Empty caches turn the defaults off, as for the
/// in-memory [`crate::schedule_one::schedule_one`].
#[derive(Debug, Clone, Default)]
pub struct Workloads {
    pub services: Cache<Service>,
    pub replica_sets: Cache<ReplicaSet>,
    pub stateful_sets: Cache<StatefulSet>,
}

/// The selector of a pod's siblings, made of the selectors of the Services
/// that select the pod and of the ReplicaSet or StatefulSet that controls
/// it (upstream `helper.DefaultSelector`). The workloads all select the
/// pod, so their requirements cannot conflict. Empty when nothing selects
/// the pod.
pub fn default_selector(pod: &Pod, workloads: &Workloads) -> Selector {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let pod_labels = pod.metadata.labels.as_ref();
    let mut set = BTreeMap::new();
    for service in workloads.services.select(namespace, &Selector::everything()) {
        // A Service without a selector selects nothing, not everything.
        let Some(selector) = service.spec.as_ref().and_then(|s| s.selector.as_ref()) else { continue };
        if selector.iter().all(|(k, v)| pod_labels.and_then(|l| l.get(k)) == Some(v)) {
            set.extend(selector.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    let mut requirements: Vec<Requirement> = set.iter().map(|(k, v)| equals(k, v)).collect();
    let controller = pod.metadata.owner_references.iter().flatten().find(|o| o.controller == Some(true));
    if let Some(owner) = controller.filter(|o| o.api_version == "apps/v1") {
        let key = format!("{namespace}/{}", owner.name);
        let owner_selector = match owner.kind.as_str() {
            "ReplicaSet" => workloads.replica_sets.get(&key).and_then(|rs| rs.spec.as_ref().map(|s| s.selector.clone())),
            "StatefulSet" => workloads.stateful_sets.get(&key).and_then(|ss| ss.spec.as_ref().map(|s| s.selector.clone())),
            _ => None,
        };
        // A selector that does not parse adds nothing, as upstream ignores it.
        if let Some(Ok(s)) = owner_selector.as_ref().map(Selector::from_label_selector) {
            requirements.extend(s.requirements);
        }
    }
    Selector { requirements }
}

/// The filter and score plugin. It is registered twice, as a filter and
/// as a score plugin; everything a cycle computes lives in the
/// [`CycleState`], not in the plugin.
#[derive(Debug, Clone, Default)]
pub struct PodTopologySpread {
    workloads: Workloads,
}

impl PodTopologySpread {
    pub fn new(workloads: Workloads) -> Self {
        PodTopologySpread { workloads }
    }

    /// The constraints for `action`: the pod's own, or — if it has none —
    /// the system defaults with the selector of its workloads (upstream
    /// `getConstraints` and `buildDefaultConstraints`).
    fn constraints(&self, pod: &Pod, action: &str) -> Result<Vec<Constraint>, String> {
        let labels = pod.metadata.labels.as_ref();
        let own = pod.spec.as_ref().and_then(|s| s.topology_spread_constraints.as_deref()).unwrap_or_default();
        if !own.is_empty() {
            return constraints_for(own, labels, action);
        }
        let mut defaults = constraints_for(&system_default_constraints(), labels, action)?;
        if defaults.is_empty() {
            return Ok(defaults);
        }
        let selector = default_selector(pod, &self.workloads);
        if selector.is_empty() {
            return Ok(Vec::new());
        }
        for c in &mut defaults {
            c.selector = Some(selector.clone());
        }
        Ok(defaults)
    }
}

/// Whether the pod lists constraints of its own (then they replace the
/// system defaults, and nodes must carry every topology key to be scored).
fn has_own_constraints(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.topology_spread_constraints.as_ref()).is_some_and(|c| !c.is_empty())
}

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl FilterPlugin for PodTopologySpread {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, nodes: &[NodeInfo]) -> Status {
        let constraints = match self.constraints(&pod.pod, DO_NOT_SCHEDULE) {
            Ok(c) => c,
            Err(e) => return Status::error(format!("get constraints from pod: obtaining pod's hard topology spread constraints: {e}")),
        };
        if constraints.is_empty() {
            return Status::skip();
        }
        state.write(filtering::PRE_FILTER_STATE_KEY, filtering::PreFilterState::new(pod, constraints, nodes));
        Status::success()
    }

    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        match state.read::<filtering::PreFilterState>(filtering::PRE_FILTER_STATE_KEY) {
            Some(s) => s.filter(pod, node),
            None => Status::error(format!("reading {:?} from cycleState: not found", filtering::PRE_FILTER_STATE_KEY)),
        }
    }
}

impl ScorePlugin for PodTopologySpread {
    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, feasible: &[&NodeInfo], all_nodes: &[NodeInfo]) -> Status {
        let constraints = match self.constraints(&pod.pod, SCHEDULE_ANYWAY) {
            Ok(c) => c,
            Err(e) => return Status::error(format!("calculating preScoreState: obtaining pod's soft topology spread constraints: {e}")),
        };
        if constraints.is_empty() {
            return Status::skip();
        }
        // Only the pod's own constraints demand every topology key: system
        // defaults still spread over hostnames on nodes without a zone.
        let require_all_topologies = has_own_constraints(&pod.pod);
        state.write(
            scoring::PRE_SCORE_STATE_KEY,
            scoring::PreScoreState::new(pod, constraints, require_all_topologies, feasible, all_nodes),
        );
        Status::success()
    }

    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        match state.read::<scoring::PreScoreState>(scoring::PRE_SCORE_STATE_KEY) {
            Some(s) => Ok(s.score(pod, node)),
            None => Err(Status::error(format!("reading {:?} from cycleState: not found", scoring::PRE_SCORE_STATE_KEY))),
        }
    }

    fn normalize_score(&self, state: &CycleState, _pod: &PodInfo, scores: &mut [NodeScore]) -> Status {
        match state.read::<scoring::PreScoreState>(scoring::PRE_SCORE_STATE_KEY) {
            Some(s) => {
                s.normalize(scores);
                Status::success()
            }
            None => Status::error(format!("reading {:?} from cycleState: not found", scoring::PRE_SCORE_STATE_KEY)),
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Builders shared by the filtering and scoring tests.

    use k8s_openapi::api::core::v1::{Node, Pod, TopologySpreadConstraint};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    use crate::framework::{NodeInfo, PodInfo};
    use crate::plugins::testing::{labels, node, pod, pod_info};
    use crate::schedule_one::node_infos;

    /// A node in `zone` (none when empty) with its hostname label.
    pub fn zoned(name: &str, zone: &str) -> Node {
        let mut n = node(name);
        let mut l = labels(&[(super::LABEL_HOSTNAME, name)]);
        if !zone.is_empty() {
            l.insert(super::LABEL_TOPOLOGY_ZONE.into(), zone.into());
        }
        n.metadata.labels = Some(l);
        n
    }

    /// A pod with `app=<app>`, bound to `node` (pending when empty).
    pub fn app_pod(name: &str, app: &str, node: &str) -> Pod {
        let mut p = pod(name);
        p.metadata.labels = Some(labels(&[("app", app)]));
        if let Some(spec) = p.spec.as_mut() {
            spec.node_name = (!node.is_empty()).then(|| node.into());
        }
        p
    }

    /// A constraint selecting `app=<app>`.
    pub fn spread(key: &str, max_skew: i32, when: &str, app: &str) -> TopologySpreadConstraint {
        TopologySpreadConstraint {
            topology_key: key.into(),
            max_skew,
            when_unsatisfiable: when.into(),
            label_selector: Some(LabelSelector { match_labels: Some(labels(&[("app", app)])), ..Default::default() }),
            ..Default::default()
        }
    }

    /// `pod` with `constraints`, as the pod to schedule.
    pub fn with_constraints(mut p: Pod, constraints: Vec<TopologySpreadConstraint>) -> PodInfo {
        if let Some(spec) = p.spec.as_mut() {
            spec.topology_spread_constraints = Some(constraints);
        }
        pod_info(p)
    }

    /// The snapshot of `nodes` with `pods` on them.
    pub fn snapshot(nodes: &[Node], pods: &[Pod]) -> Vec<NodeInfo> {
        node_infos(nodes, pods)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{labels, pod};
    use k8s_openapi::api::apps::v1::{ReplicaSetSpec, StatefulSetSpec};
    use k8s_openapi::api::core::v1::ServiceSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta, OwnerReference};
    use testing::spread;

    fn selector(s: &str) -> Option<Selector> {
        Some(Selector::parse(s).expect("test selector parses"))
    }

    #[test]
    fn constraints_take_defaults_and_merge_match_label_keys() {
        let hash = labels(&[("app", "web"), ("pod-template-hash", "abc")]);
        struct Case {
            name: &'static str,
            spec: TopologySpreadConstraint,
            action: &'static str,
            want: Vec<Constraint>,
        }
        let plain = |selector| Constraint {
            max_skew: 1,
            topology_key: LABEL_TOPOLOGY_ZONE.into(),
            selector,
            min_domains: 1,
            honor_node_affinity: true,
            honor_node_taints: false,
        };
        let cases = vec![
            Case {
                name: "defaults: minDomains 1, affinity honored, taints ignored",
                spec: spread(LABEL_TOPOLOGY_ZONE, 1, DO_NOT_SCHEDULE, "web"),
                action: DO_NOT_SCHEDULE,
                want: vec![plain(selector("app=web"))],
            },
            Case {
                name: "another action is left out",
                spec: spread(LABEL_TOPOLOGY_ZONE, 1, SCHEDULE_ANYWAY, "web"),
                action: DO_NOT_SCHEDULE,
                want: vec![],
            },
            Case {
                name: "matchLabelKeys adds the pod's values",
                spec: TopologySpreadConstraint {
                    match_label_keys: Some(vec!["pod-template-hash".into(), "absent".into()]),
                    ..spread(LABEL_TOPOLOGY_ZONE, 1, DO_NOT_SCHEDULE, "web")
                },
                action: DO_NOT_SCHEDULE,
                want: vec![plain(selector("app=web,pod-template-hash=abc"))],
            },
            Case {
                name: "no labelSelector selects nothing",
                spec: TopologySpreadConstraint { label_selector: None, ..spread(LABEL_TOPOLOGY_ZONE, 1, DO_NOT_SCHEDULE, "web") },
                action: DO_NOT_SCHEDULE,
                want: vec![plain(None)],
            },
            Case {
                name: "no labelSelector but matchLabelKeys selects by the pod's values",
                spec: TopologySpreadConstraint {
                    label_selector: None,
                    match_label_keys: Some(vec!["pod-template-hash".into()]),
                    ..spread(LABEL_TOPOLOGY_ZONE, 1, DO_NOT_SCHEDULE, "web")
                },
                action: DO_NOT_SCHEDULE,
                want: vec![plain(selector("pod-template-hash=abc"))],
            },
            Case {
                name: "explicit minDomains and policies",
                spec: TopologySpreadConstraint {
                    min_domains: Some(3),
                    node_affinity_policy: Some("Ignore".into()),
                    node_taints_policy: Some("Honor".into()),
                    ..spread(LABEL_TOPOLOGY_ZONE, 1, DO_NOT_SCHEDULE, "web")
                },
                action: DO_NOT_SCHEDULE,
                want: vec![Constraint {
                    min_domains: 3,
                    honor_node_affinity: false,
                    honor_node_taints: true,
                    ..plain(selector("app=web"))
                }],
            },
        ];
        for c in cases {
            assert_eq!(constraints_for(&[c.spec], Some(&hash), c.action), Ok(c.want), "{}", c.name);
        }
        let bad = TopologySpreadConstraint {
            label_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement { key: "app".into(), operator: "Near".into(), values: None }]),
                ..Default::default()
            }),
            ..spread(LABEL_TOPOLOGY_ZONE, 1, DO_NOT_SCHEDULE, "web")
        };
        assert!(constraints_for(&[bad], None, DO_NOT_SCHEDULE).is_err());
    }

    fn owned_by(kind: &str, name: &str) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            name: name.into(),
            controller: Some(true),
            ..Default::default()
        }
    }

    #[test]
    fn default_selector_gathers_services_and_the_controller() {
        let meta = |name: &str| ObjectMeta { name: Some(name.into()), namespace: Some("default".into()), ..Default::default() };
        let service = |name: &str, selector: Option<&[(&str, &str)]>| Service {
            metadata: meta(name),
            spec: Some(ServiceSpec { selector: selector.map(labels), ..Default::default() }),
            ..Default::default()
        };
        let match_labels = |kv: &[(&str, &str)]| LabelSelector { match_labels: Some(labels(kv)), ..Default::default() };
        let workloads = Workloads {
            services: [
                service("web", Some(&[("app", "web")])),
                service("other", Some(&[("app", "db")])),
                service("headless-external", None),
                Service {
                    metadata: ObjectMeta { namespace: Some("elsewhere".into()), ..meta("web-elsewhere") },
                    ..service("", Some(&[("tier", "front")]))
                },
            ]
            .into_iter()
            .collect(),
            replica_sets: [ReplicaSet {
                metadata: meta("web-abc"),
                spec: Some(ReplicaSetSpec {
                    selector: match_labels(&[("app", "web"), ("pod-template-hash", "abc")]),
                    ..Default::default()
                }),
                ..Default::default()
            }]
            .into_iter()
            .collect(),
            stateful_sets: [StatefulSet {
                metadata: meta("db"),
                spec: Some(StatefulSetSpec { selector: match_labels(&[("app", "db")]), ..Default::default() }),
                ..Default::default()
            }]
            .into_iter()
            .collect(),
        };
        let labelled = |kv: &[(&str, &str)], owner: Option<OwnerReference>| {
            let mut p = pod("p");
            p.metadata.labels = Some(labels(kv));
            p.metadata.owner_references = owner.map(|o| vec![o]);
            p
        };
        let cases = vec![
            ("a Service selects it", labelled(&[("app", "web"), ("tier", "front")], None), "app=web"),
            (
                "Service and ReplicaSet",
                labelled(&[("app", "web"), ("pod-template-hash", "abc")], Some(owned_by("ReplicaSet", "web-abc"))),
                "app=web,app=web,pod-template-hash=abc",
            ),
            ("a StatefulSet alone", labelled(&[("app", "db")], Some(owned_by("StatefulSet", "db"))), "app=db,app=db"),
            ("an unknown ReplicaSet adds nothing", labelled(&[("app", "cache")], Some(owned_by("ReplicaSet", "gone"))), ""),
            ("a Job is not a spreading workload", labelled(&[("app", "cache")], Some(owned_by("Job", "j"))), ""),
            ("nothing selects it", labelled(&[("app", "lonely")], None), ""),
        ];
        for (name, p, want) in cases {
            assert_eq!(default_selector(&p, &workloads).to_string(), want, "{name}");
        }

        // The plugin turns a selected pod's lack of constraints into the
        // soft system defaults, and a lonely pod's into none.
        let plugin = PodTopologySpread::new(workloads);
        let web = labelled(&[("app", "web")], None);
        let soft = plugin.constraints(&web, SCHEDULE_ANYWAY).expect("constraints");
        let keys: Vec<(&str, i32)> = soft.iter().map(|c| (c.topology_key.as_str(), c.max_skew)).collect();
        assert_eq!(keys, [(LABEL_HOSTNAME, 3), (LABEL_TOPOLOGY_ZONE, 5)]);
        assert!(soft.iter().all(|c| c.selector == selector("app=web")));
        assert_eq!(plugin.constraints(&web, DO_NOT_SCHEDULE), Ok(vec![]), "the defaults are all soft");
        assert_eq!(plugin.constraints(&labelled(&[("app", "lonely")], None), SCHEDULE_ANYWAY), Ok(vec![]));
    }

    #[test]
    fn counting_skips_other_namespaces_terminating_and_unselected_pods() {
        use crate::plugins::testing::pod_info;
        use testing::app_pod;
        let c = constraints_for(&[spread(LABEL_HOSTNAME, 1, DO_NOT_SCHEDULE, "web")], None, DO_NOT_SCHEDULE).expect("constraint");
        let mut elsewhere = app_pod("e", "web", "n");
        elsewhere.metadata.namespace = Some("other".into());
        let mut leaving = app_pod("l", "web", "n");
        leaving.metadata.deletion_timestamp = Some(api::time::now());
        let pods: Vec<PodInfo> = [app_pod("a", "web", "n"), app_pod("b", "web", "n"), app_pod("db", "db", "n"), elsewhere, leaving]
            .into_iter()
            .map(pod_info)
            .collect();
        assert_eq!(count_pods_match_selector(&pods, &c[0], Some("default")), 2);
    }
}
