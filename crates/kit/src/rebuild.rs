//! In-place rebuilds of a running service's read models
//! (`psirt.admin.v1.AdminService/RebuildReadModel`).
//!
//! A [`Rebuildable`] runs one projection as the service normally does and, when its
//! [`Rebuilder`] is asked, stops the runner, takes the projection's lease (so no other
//! replica goes on applying into a read model being reset), resets the read model and
//! replays the stream up to its last sequence at that moment, reporting progress, then
//! goes on following the stream. Reads during the rebuild see a read model filling up
//! from the start; commands are unaffected (they load from the stream).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use psirt_projection::{
    ParkedEvents, Progress, Projection, ProjectionError, ProjectionRunner, ReadModelPosition,
};
use psirt_proto::admin;
use tokio::sync::{mpsc, watch};
use tonic::Status;
use tracing::{info, warn};

use crate::error::ApiError;

/// Progress of one rebuild.
#[derive(Debug, Clone, Default)]
pub struct RebuildStatus {
    /// Events applied so far (the checkpoint).
    pub applied: u64,
    /// The stream's last sequence when the replay started.
    pub target: u64,
    /// True once the read model has reached `target`.
    pub done: bool,
    /// Why it failed; the last status then.
    pub error: Option<(tonic::Code, String)>,
}

struct RebuildJob {
    progress: watch::Sender<RebuildStatus>,
}

/// Starts rebuilds of one read model in the running service. Cheap to clone.
#[derive(Clone)]
pub struct Rebuilder {
    read_model: Arc<str>,
    jobs: mpsc::Sender<RebuildJob>,
    busy: Arc<AtomicBool>,
}

impl std::fmt::Debug for Rebuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rebuilder").field("read_model", &self.read_model).finish_non_exhaustive()
    }
}

impl Rebuilder {
    /// The read model's (projection's) name.
    pub fn read_model(&self) -> &str {
        &self.read_model
    }

    /// Starts a rebuild; its progress follows on the receiver. One at a time:
    /// `FAILED_PRECONDITION` while one runs, `UNAVAILABLE` when the projection
    /// does not run (the service is stopping).
    pub fn start(&self) -> Result<watch::Receiver<RebuildStatus>, Status> {
        if self.busy.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return Err(ApiError::failed_precondition(
                format!("a rebuild of {} is already running", self.read_model),
                Some("rebuilding"),
            )
            .into());
        }
        let (progress, receiver) = watch::channel(RebuildStatus::default());
        if self.jobs.try_send(RebuildJob { progress }).is_err() {
            self.busy.store(false, Ordering::Release);
            return Err(
                ApiError::Unavailable(format!("the projection {} is not running", self.read_model)).into()
            );
        }
        Ok(receiver)
    }
}

/// A projection that runs like any other and rebuilds in place when asked.
pub struct Rebuildable<P> {
    make: Box<dyn Fn() -> ProjectionRunner<P> + Send + Sync>,
    /// The runner that runs first; every later one (after a rebuild) shares its
    /// progress and parked events, so their watchers and handles keep working.
    first: Option<ProjectionRunner<P>>,
    progress: Arc<Progress>,
    parked: ParkedEvents,
    jobs: mpsc::Receiver<RebuildJob>,
    rebuilder: Rebuilder,
    position: ReadModelPosition,
}

impl<P: Projection + 'static> Rebuildable<P> {
    /// `make` builds a runner of the projection; it is called again after each
    /// rebuild.
    pub fn new(make: impl Fn() -> ProjectionRunner<P> + Send + Sync + 'static) -> Self {
        let first = make();
        let read_model: Arc<str> = Arc::from(first.projection().name());
        let (progress, parked, position) = (first.progress(), first.parked_events(), first.position());
        let (jobs_tx, jobs) = mpsc::channel(1);
        let rebuilder = Rebuilder { read_model, jobs: jobs_tx, busy: Arc::new(AtomicBool::new(false)) };
        Self { make: Box::new(make), first: Some(first), progress, parked, jobs, rebuilder, position }
    }

    /// Where the read model stands (for reads that wait for a position); it
    /// follows every later runner, which shares the first one's progress.
    pub fn position(&self) -> ReadModelPosition {
        self.position.clone()
    }

    /// The handle the admin API starts rebuilds with.
    pub fn rebuilder(&self) -> Rebuilder {
        self.rebuilder.clone()
    }

    /// The projection's name and progress, for the stall watcher.
    pub fn watched(&self) -> (String, Arc<Progress>) {
        (self.rebuilder.read_model.to_string(), Arc::clone(&self.progress))
    }

    /// The projection's parked events.
    pub fn parked_events(&self) -> ParkedEvents {
        self.parked.clone()
    }

    /// The runner that runs first (its progress is every later runner's).
    pub fn first_runner(&self) -> Option<&ProjectionRunner<P>> {
        self.first.as_ref()
    }

    fn next_runner(&mut self) -> ProjectionRunner<P> {
        self.first.take().unwrap_or_else(|| {
            (self.make)().with_progress(Arc::clone(&self.progress)).with_parked_events(self.parked.clone())
        })
    }

    /// Runs the projection until `stop`, rebuilding when asked to.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), ProjectionError> {
        let mut runner = self.next_runner();
        loop {
            let (halt, halted) = watch::channel(false);
            let mut task = tokio::spawn(runner.run(halted));
            let job = tokio::select! {
                result = &mut task => return joined(result),
                () = stopped(&mut stop) => {
                    let _ = halt.send(true);
                    return joined(task.await);
                }
                job = self.jobs.recv() => job,
            };
            let _ = halt.send(true);
            if let Err(e) = joined(task.await) {
                warn!(read_model = %self.rebuilder.read_model, error = %e, "projection stopped with an error before the rebuild");
            }
            runner = self.next_runner();
            if let Some(job) = job {
                rebuild(&self.rebuilder.read_model, &runner, &job, &mut stop).await;
                self.rebuilder.busy.store(false, Ordering::Release);
            }
            if *stop.borrow() {
                return Ok(());
            }
        }
    }
}

async fn rebuild<P: Projection>(
    name: &str,
    runner: &ProjectionRunner<P>,
    job: &RebuildJob,
    stop: &mut watch::Receiver<bool>,
) {
    let fail = |code: tonic::Code, message: String| {
        warn!(read_model = name, message, "rebuild failed");
        job.progress.send_modify(|s| s.error = Some((code, message)));
    };
    // The lease first: resetting while another replica's runner goes on
    // applying would leave a read model with a hole.
    match runner.apply_batch(&[]).await {
        Ok(_) => {}
        Err(ProjectionError::LeaseLost(_)) => {
            return fail(
                tonic::Code::FailedPrecondition,
                format!("another replica's projection {name} holds the lease; run the rebuild there"),
            );
        }
        Err(e) => return fail(tonic::Code::Unavailable, format!("cannot start the rebuild: {e}")),
    }
    info!(read_model = name, "rebuilding from sequence 1");
    let rebuilt = tokio::select! {
        result = runner.rebuild(|applied, target| {
            job.progress.send_modify(|s| {
                s.applied = applied;
                s.target = target;
            });
        }) => result,
        () = stopped(stop) => {
            return fail(
                tonic::Code::Unavailable,
                "the service is shutting down; the replay continues when it runs again".to_owned(),
            );
        }
    };
    match rebuilt {
        Ok(target) => {
            info!(read_model = name, target, "rebuilt");
            job.progress.send_modify(|s| {
                s.applied = s.applied.max(target);
                s.target = target;
                s.done = true;
            });
        }
        Err(e) => fail(
            tonic::Code::Unavailable,
            format!("the replay failed: {e}; it continues where it stopped once the projection runs again"),
        ),
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

fn joined(
    result: Result<Result<(), ProjectionError>, tokio::task::JoinError>,
) -> Result<(), ProjectionError> {
    result.unwrap_or_else(|e| Err(ProjectionError::Stream(format!("projection task panicked: {e}"))))
}

/// The stream `RebuildReadModel` answers: the first status at once, then every change
/// until done or failed.
pub type RebuildStream =
    Pin<Box<dyn futures::Stream<Item = Result<admin::RebuildReadModelResponse, Status>> + Send>>;

/// Starts a rebuild of the read model `requested` names (empty: the only one, when
/// there is one) among `rebuilders`.
pub fn start(rebuilders: &[Rebuilder], requested: &str) -> Result<RebuildStream, Status> {
    let known = || rebuilders.iter().map(Rebuilder::read_model).collect::<Vec<_>>().join(", ");
    let rebuilder = match (requested.trim(), rebuilders) {
        (_, []) => return Err(Status::unimplemented("this service has no read model to rebuild")),
        ("", [only]) => only,
        ("", _) => {
            return Err(ApiError::invalid_argument(
                "read_model",
                format!("name the read model to rebuild, one of: {}", known()),
            )
            .into());
        }
        (name, _) => rebuilders.iter().find(|r| r.read_model() == name).ok_or_else(|| {
            Status::from(ApiError::not_found("read model", format!("{name} (this service has: {})", known())))
        })?,
    };
    let progress = rebuilder.start()?;
    let name = rebuilder.read_model().to_owned();
    let message = move |status: &RebuildStatus| admin::RebuildReadModelResponse {
        read_model: name.clone(),
        applied_sequence: status.applied,
        target_sequence: status.target,
        done: status.done,
    };
    let stream = futures::stream::unfold((progress, true, false), move |(mut rx, first, finished)| {
        let message = message.clone();
        async move {
            if finished {
                return None;
            }
            if !first && rx.changed().await.is_err() {
                let lost = Status::unavailable("the rebuild stopped without a result");
                return Some((Err(lost), (rx, false, true)));
            }
            let status = rx.borrow_and_update().clone();
            if let Some((code, text)) = status.error {
                return Some((Err(Status::new(code, text)), (rx, false, true)));
            }
            let done = status.done;
            Some((Ok(message(&status)), (rx, false, done)))
        }
    });
    Ok(Box::pin(stream))
}
