//! Pod status, computed from what the pod worker sees: pure functions.
//!
//! The kubelet's status manager writes a pod's status from the runtime's
//! view of its containers: one `containerStatuses[]` entry per container,
//! the pod's `phase`, and its conditions. This module does that
//! computation with no I/O, the way upstream's `getPhase` and
//! `generateAPIPodStatus` do, so it can be tested as a table.
//!
//! Conditions keep their `lastTransitionTime` when their status did not
//! change, so computing a status twice gives the same object and the
//! worker writes only when something really changed.
//!
//! A container's `ready` and `started` come from its probes (see
//! `prober`): the worker hands them in with the container's view, so this
//! module stays a pure function of what it is given.
//!
//! Init containers have their own `initContainerStatuses[]`; until every
//! one has exited 0 the pod is `Pending` and not `Initialized` (kubectl
//! shows `Init:1/2`), and with `restartPolicy: Never` a failed one fails
//! the pod.
//!
//! The pod's IP is its sandbox's (`None` while there is no sandbox yet);
//! `PodReadyToStartContainers` says whether that sandbox runs.

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, HostIP, Pod,
    PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// What one container is doing now, as the worker determined it.
#[derive(Debug, Clone, PartialEq)]
pub enum Current {
    Running {
        started_at: Option<Time>,
        container_id: String,
    },
    Terminated(ContainerStateTerminated),
    /// Not running and not finished: `ContainerCreating`, `CrashLoopBackOff`,
    /// `CreateContainerError`, `CreateContainerConfigError`.
    Waiting {
        reason: String,
        message: Option<String>,
    },
}

/// The worker's view of one container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerView {
    pub name: String,
    pub image: String,
    /// The runtime's reference for the image (`imageID`); empty before
    /// the image was looked at.
    pub image_id: String,
    pub restart_count: i32,
    pub current: Current,
    /// How the previous run ended: the status's `lastState.terminated`.
    pub last_terminated: Option<ContainerStateTerminated>,
    /// The startup probe succeeded, or there is none (only meaningful
    /// while running).
    pub started: bool,
    /// The readiness probe's latest verdict is success, or there is none
    /// (only meaningful while running and started).
    pub ready: bool,
}

/// One `containerStatuses[]` entry.
pub fn container_status(view: &ContainerView) -> ContainerStatus {
    let (state, running, container_id) = match &view.current {
        Current::Running { started_at, container_id } => (
            ContainerState { running: Some(ContainerStateRunning { started_at: started_at.clone() }), ..Default::default() },
            true,
            Some(container_id.clone()),
        ),
        Current::Terminated(t) => (ContainerState { terminated: Some(t.clone()), ..Default::default() }, false, t.container_id.clone()),
        Current::Waiting { reason, message } => (
            ContainerState {
                waiting: Some(ContainerStateWaiting { reason: Some(reason.clone()), message: message.clone() }),
                ..Default::default()
            },
            false,
            None,
        ),
    };
    ContainerStatus {
        name: view.name.clone(),
        image: view.image.clone(),
        image_id: view.image_id.clone(),
        container_id,
        restart_count: view.restart_count,
        // A container that does not run is neither started nor ready,
        // whatever its probes said about its previous run.
        ready: running && view.started && view.ready,
        started: Some(running && view.started),
        state: Some(state),
        last_state: Some(ContainerState { terminated: view.last_terminated.clone(), ..Default::default() }),
        ..Default::default()
    }
}

/// The pod phase, as upstream's `getPhase`: `Pending` while any container
/// waits to run for the first time, `Running` while any runs (or will be
/// restarted), and `Succeeded`/`Failed` once every container stopped for
/// good. `terminal` says the pod is being deleted and its containers were
/// stopped, so nothing will restart whatever the restart policy says.
pub fn pod_phase(containers: &[Container], statuses: &[ContainerStatus], restart_policy: &str, terminal: bool) -> &'static str {
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for c in containers {
        let state = statuses.iter().find(|s| s.name == c.name).and_then(|s| s.state.as_ref().map(|st| (s, st)));
        match state {
            Some((_, st)) if st.running.is_some() => running += 1,
            Some((_, st)) if st.terminated.is_some() => {
                stopped += 1;
                if st.terminated.as_ref().is_some_and(|t| t.exit_code == 0) {
                    succeeded += 1;
                }
            }
            Some((s, st)) if st.waiting.is_some() => {
                if s.last_state.as_ref().is_some_and(|l| l.terminated.is_some()) {
                    stopped += 1;
                } else {
                    waiting += 1;
                }
            }
            _ => unknown += 1,
        }
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 && unknown == 0 {
        return "Running";
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if terminal {
            return if stopped == succeeded { "Succeeded" } else { "Failed" };
        }
        return match restart_policy {
            "Never" if stopped == succeeded => "Succeeded",
            "Never" => "Failed",
            "OnFailure" if stopped == succeeded => "Succeeded",
            "OnFailure" | "Always" | "" => "Running",
            _ => "Running",
        };
    }
    "Pending"
}

/// A condition, keeping the old `lastTransitionTime` when its status did
/// not change.
fn condition(old: &[PodCondition], type_: &str, ok: bool, reason: Option<&str>, message: Option<String>, now: &Time) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let since = old
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    PodCondition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.map(str::to_string),
        message,
        last_transition_time: Some(since),
        ..Default::default()
    }
}

/// The whole pod status, from the container views (in spec order).
pub fn pod_status(
    pod: &Pod,
    init: &[ContainerView],
    views: &[ContainerView],
    host_ip: &str,
    pod_ip: Option<&str>,
    terminal: bool,
    now: &Time,
) -> PodStatus {
    let old = pod.status.clone().unwrap_or_default();
    let old_conditions = old.conditions.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let statuses: Vec<ContainerStatus> = views.iter().map(container_status).collect();
    let init_statuses: Vec<ContainerStatus> = init
        .iter()
        .map(|v| ContainerStatus { ready: false, started: Some(matches!(v.current, Current::Running { .. })), ..container_status(v) })
        .collect();
    let exited = |v: &&ContainerView, ok: bool| matches!(&v.current, Current::Terminated(t) if (t.exit_code == 0) == ok);
    let incomplete: Vec<&str> = init.iter().filter(|v| !exited(v, true)).map(|v| v.name.as_str()).collect();
    let initialized = incomplete.is_empty();
    let restart_policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let init_failed = restart_policy == "Never" && init.iter().any(|v| exited(&v, false));
    let phase = if init_failed {
        "Failed"
    } else if !initialized {
        "Pending"
    } else {
        pod_phase(&spec.containers, &statuses, restart_policy, terminal)
    };
    let finished = phase == "Succeeded" || phase == "Failed";

    let unready: Vec<&str> = statuses.iter().filter(|s| !s.ready).map(|s| s.name.as_str()).collect();
    let all_ready = unready.is_empty() && !statuses.is_empty();
    let (ready_reason, ready_message) = if all_ready {
        (None, None)
    } else if phase == "Succeeded" {
        (Some("PodCompleted"), None)
    } else {
        (Some("ContainersNotReady"), Some(format!("containers with unready status: [{}]", unready.join(" "))))
    };

    let mut conditions = vec![
        // The sandbox runs (it has an IP) until the pod is finished.
        condition(&old_conditions, "PodReadyToStartContainers", pod_ip.is_some() && !finished, None, None, now),
        if initialized {
            condition(&old_conditions, "Initialized", true, None, None, now)
        } else {
            let message = format!("containers with incomplete status: [{}]", incomplete.join(" "));
            condition(&old_conditions, "Initialized", false, Some("ContainersNotInitialized"), Some(message), now)
        },
        condition(&old_conditions, "Ready", all_ready, ready_reason, ready_message.clone(), now),
        condition(&old_conditions, "ContainersReady", all_ready, ready_reason, ready_message, now),
    ];
    // The scheduler's condition is the scheduler's: keep it as it is.
    if let Some(scheduled) = old_conditions.iter().find(|c| c.type_ == "PodScheduled") {
        conditions.push(scheduled.clone());
    }

    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        host_ip: Some(host_ip.into()),
        host_ips: Some(vec![HostIP { ip: host_ip.into() }]),
        // A pod keeps the IP it had while it terminates.
        pod_ip: pod_ip.map(str::to_string).or(old.pod_ip.clone()),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip: ip.into() }]).or(old.pod_ips.clone()),
        start_time: old.start_time.clone().or_else(|| Some(now.clone())),
        container_statuses: Some(statuses),
        init_container_statuses: Some(init_statuses).filter(|s| !s.is_empty()),
        qos_class: old.qos_class.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

    fn t(secs: i64) -> Time {
        Time(jiff::Timestamp::from_second(1_700_000_000 + secs).unwrap())
    }

    fn exited(code: i32) -> ContainerStateTerminated {
        ContainerStateTerminated {
            exit_code: code,
            reason: Some(if code == 0 { "Completed" } else { "Error" }.into()),
            ..Default::default()
        }
    }

    fn running() -> Current {
        Current::Running { started_at: Some(t(0)), container_id: "process://42".into() }
    }

    fn waiting(reason: &str) -> Current {
        Current::Waiting { reason: reason.into(), message: None }
    }

    fn pod(policy: &str, names: &[&str]) -> Pod {
        Pod {
            spec: Some(PodSpec {
                restart_policy: Some(policy.into()),
                containers: names.iter().map(|n| Container { name: n.to_string(), ..Default::default() }).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn view(name: &str, current: Current, last: Option<ContainerStateTerminated>) -> ContainerView {
        ContainerView {
            name: name.into(),
            image: "busybox".into(),
            image_id: "process://busybox".into(),
            restart_count: 0,
            current,
            last_terminated: last,
            started: true,
            ready: true,
        }
    }

    #[test]
    fn init_containers_hold_the_pod_pending_until_each_exits_zero() {
        let waiting_app = || view("app", waiting("PodInitializing"), None);
        // (policy, init views, phase, Initialized, its message)
        type Row = (&'static str, Vec<ContainerView>, &'static str, &'static str, Option<&'static str>);
        let table: Vec<Row> = vec![
            (
                "Always",
                vec![view("a", running(), None), view("b", waiting("PodInitializing"), None)],
                "Pending",
                "False",
                Some("containers with incomplete status: [a b]"),
            ),
            (
                "Always",
                vec![view("a", Current::Terminated(exited(0)), None), view("b", Current::Terminated(exited(1)), None)],
                "Pending",
                "False",
                Some("containers with incomplete status: [b]"),
            ),
            (
                "Never",
                vec![view("a", Current::Terminated(exited(1)), None)],
                "Failed",
                "False",
                Some("containers with incomplete status: [a]"),
            ),
            ("Always", vec![view("a", Current::Terminated(exited(0)), None)], "Running", "True", None),
        ];
        for (policy, init, want_phase, want_init, want_message) in table {
            let p = pod(policy, &["app"]);
            let initialized = want_init == "True";
            let apps = if initialized { vec![view("app", running(), None)] } else { vec![waiting_app()] };
            let status = pod_status(&p, &init, &apps, "10.0.0.1", Some("10.88.0.2"), false, &t(5));
            assert_eq!(status.phase.as_deref(), Some(want_phase), "{policy} {init:?}");
            let cond = status.conditions.unwrap().into_iter().find(|c| c.type_ == "Initialized").unwrap();
            assert_eq!((cond.status.as_str(), cond.message.as_deref()), (want_init, want_message));
            let inits = status.init_container_statuses.unwrap();
            assert_eq!(inits.len(), init.len());
            assert!(inits.iter().all(|s| !s.ready), "init containers are never ready");
            assert_eq!(status.pod_ip.as_deref(), Some("10.88.0.2"));
        }
    }

    #[test]
    fn phase_follows_container_states_and_restart_policy() {
        // (restart policy, [(current, lastState.terminated)], terminal, phase)
        type Row = (&'static str, Vec<(Current, Option<ContainerStateTerminated>)>, bool, &'static str);
        let table: Vec<Row> = vec![
            ("Always", vec![(waiting("ContainerCreating"), None)], false, "Pending"),
            ("Always", vec![(running(), None)], false, "Running"),
            ("Always", vec![(running(), None), (waiting("ContainerCreating"), None)], false, "Pending"),
            ("Always", vec![(waiting("CrashLoopBackOff"), Some(exited(1)))], false, "Running"),
            ("Always", vec![(Current::Terminated(exited(0)), None)], false, "Running"),
            ("OnFailure", vec![(Current::Terminated(exited(0)), None), (Current::Terminated(exited(0)), None)], false, "Succeeded"),
            ("OnFailure", vec![(waiting("CrashLoopBackOff"), Some(exited(2)))], false, "Running"),
            ("Never", vec![(Current::Terminated(exited(0)), None)], false, "Succeeded"),
            ("Never", vec![(Current::Terminated(exited(0)), None), (Current::Terminated(exited(3)), None)], false, "Failed"),
            ("Never", vec![(Current::Terminated(exited(0)), None), (running(), None)], false, "Running"),
            ("Never", vec![(waiting("CreateContainerError"), None)], false, "Pending"),
            ("Always", vec![(Current::Terminated(exited(143)), None)], true, "Failed"),
            ("Always", vec![(Current::Terminated(exited(0)), None)], true, "Succeeded"),
        ];
        for (i, (policy, containers, terminal, want)) in table.into_iter().enumerate() {
            let names: Vec<String> = (0..containers.len()).map(|i| format!("c{i}")).collect();
            let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let p = pod(policy, &name_refs);
            let views: Vec<ContainerView> = containers.into_iter().zip(&names).map(|((cur, last), n)| view(n, cur, last)).collect();
            let status = pod_status(&p, &[], &views, "10.0.0.1", Some("10.0.0.1"), terminal, &t(5));
            assert_eq!(status.phase.as_deref(), Some(want), "row {i}: {policy}");
        }
    }

    #[test]
    fn a_missing_container_status_keeps_the_pod_pending() {
        let p = pod("Always", &["a", "b"]);
        let statuses = vec![container_status(&view("a", running(), None))];
        assert_eq!(pod_phase(&p.spec.as_ref().unwrap().containers, &statuses, "Always", false), "Pending");
    }

    #[test]
    fn conditions_say_which_containers_are_unready() {
        let mut p = pod("Always", &["a", "b"]);
        p.status = Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "PodScheduled".into(),
                status: "True".into(),
                last_transition_time: Some(t(-10)),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let views = vec![view("a", waiting("CrashLoopBackOff"), Some(exited(1))), view("b", waiting("ContainerCreating"), None)];
        let status = pod_status(&p, &[], &views, "10.0.0.1", Some("10.0.0.1"), false, &t(5));
        let conds = status.conditions.unwrap();
        let types: Vec<&str> = conds.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]);
        let ready = &conds[2];
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(ready.message.as_deref(), Some("containers with unready status: [a b]"));
        assert_eq!(conds[4].last_transition_time, Some(t(-10)), "the scheduler's condition is kept");
        assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(status.start_time, Some(t(5)));
    }

    #[test]
    fn recomputing_an_unchanged_status_gives_the_same_object() {
        let mut p = pod("Always", &["a"]);
        let views = vec![view("a", running(), None)];
        let first = pod_status(&p, &[], &views, "10.0.0.1", Some("10.0.0.1"), false, &t(5));
        p.status = Some(first.clone());
        let second = pod_status(&p, &[], &views, "10.0.0.1", Some("10.0.0.1"), false, &t(99));
        assert_eq!(first, second);
        let ready = first.conditions.unwrap().into_iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "True");
    }

    #[test]
    fn a_failing_readiness_probe_makes_the_pod_unready_with_upstreams_reason() {
        let p = pod("Always", &["web", "sidecar"]);
        // (started, ready) of "web" from its probes -> (web ready, web started, pod Ready)
        for ((started, ready), want) in [
            ((true, true), (true, true, "True")),
            ((true, false), (false, true, "False")),
            ((false, false), (false, false, "False")),
            // Ready without started cannot happen; started gates it anyway.
            ((false, true), (false, false, "False")),
        ] {
            let mut web = view("web", running(), None);
            (web.started, web.ready) = (started, ready);
            let status = pod_status(&p, &[], &[web, view("sidecar", running(), None)], "10.0.0.1", Some("10.0.0.1"), false, &t(5));
            let s = &status.container_statuses.as_ref().unwrap()[0];
            let conds = status.conditions.unwrap();
            let ready_cond = conds.iter().find(|c| c.type_ == "Ready").unwrap();
            let containers_ready = conds.iter().find(|c| c.type_ == "ContainersReady").unwrap();
            assert_eq!((s.ready, s.started.unwrap(), ready_cond.status.as_str()), want, "{started} {ready}");
            assert_eq!(containers_ready.status, ready_cond.status);
            if !want.0 {
                assert_eq!(ready_cond.reason.as_deref(), Some("ContainersNotReady"));
                assert_eq!(ready_cond.message.as_deref(), Some("containers with unready status: [web]"));
            }
            assert_eq!(status.phase.as_deref(), Some("Running"), "readiness never changes the phase");
        }
    }

    #[test]
    fn container_status_shapes() {
        let mut v = view("a", waiting("CrashLoopBackOff"), Some(exited(1)));
        v.restart_count = 3;
        let s = container_status(&v);
        assert!(!s.ready);
        assert_eq!(s.restart_count, 3);
        assert_eq!(s.image_id, "process://busybox");
        assert_eq!(s.state.unwrap().waiting.unwrap().reason.as_deref(), Some("CrashLoopBackOff"));
        assert_eq!(s.last_state.unwrap().terminated.unwrap().exit_code, 1);
        let r = container_status(&view("a", running(), None));
        assert!(r.ready);
        assert_eq!(r.started, Some(true));
        assert_eq!(r.container_id.as_deref(), Some("process://42"));
    }
}
