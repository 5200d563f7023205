//! The cluster's render jobs travel through RabbitMQ: an edge stores the job in PostgreSQL and
//! publishes its id to the durable queue `place.NAME.timelapse` (persistent message, publisher
//! confirm awaited); every `place worker` consumes that queue one message at a time
//! (`prefetch 1`) with manual acknowledgement, and acknowledges only once the job's result (or
//! its failure) is stored. A worker that dies mid-job never acknowledges, so the broker hands the
//! message to another worker, which claims the job again and renders it from the start
//! ([`crate::jobs`]). A store failure mid-job is answered with a requeueing `nack` after a pause.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::jobs::{run_blocking, run_job, JobContext, Outcome};
use crate::TimelapseError;

/// The default broker: the local RabbitMQ's default virtual host.
pub const DEFAULT_AMQP_URL: &str = "amqp://127.0.0.1:5672/%2f";
/// How long a worker waits before it reconnects, or hands back a job the store failed.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// AMQP's persistent delivery mode.
const PERSISTENT: u8 = 2;

/// The queue of one cluster's jobs.
pub struct JobQueue {
    url: String,
    name: String,
    channel: tokio::sync::Mutex<Option<(Connection, Channel)>>,
}

impl std::fmt::Debug for JobQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobQueue")
            .field("name", &self.name)
            .finish()
    }
}

impl JobQueue {
    /// The queue of cluster `cluster` at the broker `url` (connected on first use).
    pub fn new(url: &str, cluster: &str) -> Self {
        Self {
            url: url.to_owned(),
            name: format!("place.{cluster}.timelapse"),
            channel: tokio::sync::Mutex::new(None),
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn open(&self) -> Result<(Connection, Channel), TimelapseError> {
        let connection = Connection::connect(&self.url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        channel
            .queue_declare(
                self.name.as_str().into(),
                QueueDeclareOptions::durable(),
                FieldTable::default(),
            )
            .await?;
        Ok((connection, channel))
    }

    /// Publishes a job's id, persistently, and waits for the broker to confirm it.
    pub async fn publish(&self, job_id: &str) -> Result<(), TimelapseError> {
        let mut slot = self.channel.lock().await;
        let result = async {
            if slot.as_ref().is_none_or(|(_, c)| !c.status().connected()) {
                let (connection, channel) = self.open().await?;
                channel
                    .confirm_select(ConfirmSelectOptions::default())
                    .await?;
                *slot = Some((connection, channel));
            }
            let Some((_, channel)) = slot.as_ref() else {
                return Err(TimelapseError::Encode("no channel".into()));
            };
            let confirm = channel
                .basic_publish(
                    "".into(),
                    self.name.as_str().into(),
                    BasicPublishOptions::default(),
                    job_id.as_bytes(),
                    BasicProperties::default().with_delivery_mode(PERSISTENT),
                )
                .await?
                .await?;
            if confirm.is_nack() {
                return Err(TimelapseError::Encode("the broker refused the job".into()));
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            *slot = None;
        }
        result
    }

    /// Deletes the queue (tests clean up with it).
    pub async fn delete(&self) -> Result<(), TimelapseError> {
        let (_connection, channel) = self.open().await?;
        channel
            .queue_delete(self.name.as_str().into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    }

    /// Consumes jobs until `shutdown`, reconnecting after failures (see the module
    /// documentation). A job under way when `shutdown` comes is left unacknowledged, so the
    /// broker gives it to another worker.
    pub async fn work(&self, ctx: JobContext, worker_id: &str, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            if let Err(error) = self.consume(&ctx, worker_id, &shutdown).await {
                warn!(%error, queue = %self.name, "job queue failed; reconnecting");
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_PAUSE) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
        }
    }

    async fn consume(
        &self,
        ctx: &JobContext,
        worker_id: &str,
        shutdown: &CancellationToken,
    ) -> Result<(), TimelapseError> {
        let (_connection, channel) = self.open().await?;
        channel.basic_qos(1, BasicQosOptions::default()).await?;
        let mut consumer = channel
            .basic_consume(
                self.name.as_str().into(),
                worker_id.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        info!(queue = %self.name, worker = worker_id, "waiting for timelapse jobs");
        loop {
            let delivery = tokio::select! {
                next = consumer.next() => match next {
                    Some(delivery) => delivery?,
                    None => return Err(TimelapseError::Encode("the consumer was cancelled".into())),
                },
                _ = shutdown.cancelled() => return Ok(()),
            };
            let id = String::from_utf8_lossy(&delivery.data).into_owned();
            info!(job = %id, redelivered = delivery.redelivered, "timelapse job received");
            let (job_ctx, job_id) = (ctx.clone(), id.clone());
            let outcome = tokio::select! {
                outcome = run_blocking(async move { run_job(&job_ctx, &job_id).await }) => outcome,
                _ = shutdown.cancelled() => return Ok(()),
            };
            match outcome {
                Some(Ok(outcome)) => {
                    if let Outcome::Failed(reason) = &outcome {
                        warn!(job = %id, %reason, "timelapse job failed");
                    }
                    delivery.ack(BasicAckOptions::default()).await?;
                }
                Some(Err(error)) => {
                    warn!(job = %id, %error, "timelapse job interrupted; handing it back");
                    tokio::time::sleep(RETRY_PAUSE).await;
                    delivery
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..BasicNackOptions::default()
                        })
                        .await?;
                }
                None => {
                    warn!(job = %id, "timelapse job panicked; handing it back");
                    delivery
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..BasicNackOptions::default()
                        })
                        .await?;
                }
            }
        }
    }
}
