//! CloudWatch metrics through `PutMetricData`: tool calls, errors and latency by tool (from core's
//! [`ToolMetrics`](mlops_core::ToolMetrics) windows) and whatever counts the server adds
//! (workflow executions and training jobs by status), published periodically in the background.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use mlops_core::ToolWindow;
use tokio::sync::Notify;

use crate::client::{AwsConfig, AwsError, QueryClient, Service};

/// Data points per `PutMetricData` call (AWS allows 1,000; fewer keeps each body small).
const PER_CALL: usize = 500;

/// A value, or a statistic set summarising many samples.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Single(f64),
    Statistics {
        count: f64,
        sum: f64,
        min: f64,
        max: f64,
    },
}

/// One data point: a metric name, its dimensions, a CloudWatch unit (`Count`, `Milliseconds`...).
#[derive(Debug, Clone, PartialEq)]
pub struct Datum {
    pub name: String,
    pub dimensions: Vec<(String, String)>,
    pub unit: &'static str,
    pub value: Value,
}

impl Datum {
    pub fn count(name: &str, dimensions: &[(&str, &str)], value: f64) -> Self {
        Self {
            name: name.to_string(),
            dimensions: dimensions
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            unit: "Count",
            value: Value::Single(value),
        }
    }
}

/// `ToolCalls` and `ToolErrors` (Count) and `ToolLatency` (Milliseconds, a statistic set), each with
/// the dimension `Tool`.
pub fn tool_data(windows: &BTreeMap<String, ToolWindow>) -> Vec<Datum> {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut out = Vec::new();
    for (tool, w) in windows {
        let dims = [("Tool", tool.as_str())];
        out.push(Datum::count("ToolCalls", &dims, w.calls as f64));
        out.push(Datum::count("ToolErrors", &dims, w.errors as f64));
        out.push(Datum {
            value: Value::Statistics {
                count: w.calls as f64,
                sum: ms(w.latency_sum),
                min: ms(w.latency_min),
                max: ms(w.latency_max),
            },
            unit: "Milliseconds",
            ..Datum::count("ToolLatency", &dims, 0.0)
        });
    }
    out
}

/// Sends data points to one namespace.
#[derive(Clone, Debug)]
pub struct MetricsPublisher {
    client: QueryClient,
    namespace: String,
}

impl MetricsPublisher {
    pub fn new(config: &AwsConfig, namespace: &str) -> Self {
        Self {
            client: QueryClient::new(config, Service::CLOUDWATCH, "2010-08-01"),
            namespace: namespace.to_string(),
        }
    }

    /// Publishes `data` (in as many calls as needed).
    pub async fn put(&self, data: &[Datum]) -> Result<(), AwsError> {
        for chunk in data.chunks(PER_CALL) {
            let mut params = vec![("Namespace".to_string(), self.namespace.clone())];
            for (i, d) in chunk.iter().enumerate() {
                let p = format!("MetricData.member.{}", i + 1);
                params.push((format!("{p}.MetricName"), d.name.clone()));
                params.push((format!("{p}.Unit"), d.unit.to_string()));
                for (j, (name, value)) in d.dimensions.iter().enumerate() {
                    let q = format!("{p}.Dimensions.member.{}", j + 1);
                    params.push((format!("{q}.Name"), name.clone()));
                    params.push((format!("{q}.Value"), value.clone()));
                }
                match d.value {
                    Value::Single(v) => params.push((format!("{p}.Value"), v.to_string())),
                    Value::Statistics {
                        count,
                        sum,
                        min,
                        max,
                    } => {
                        let s = format!("{p}.StatisticValues");
                        params.push((format!("{s}.SampleCount"), count.to_string()));
                        params.push((format!("{s}.Sum"), sum.to_string()));
                        params.push((format!("{s}.Minimum"), min.to_string()));
                        params.push((format!("{s}.Maximum"), max.to_string()));
                    }
                }
            }
            self.client.call("PutMetricData", &params).await?;
        }
        Ok(())
    }

    /// Every `interval`, publishes what `collect` returns (nothing when it returns nothing), in the
    /// background. A failed publication is logged (once per outage) and its data dropped: metrics
    /// must never hold up the server.
    pub fn spawn<F, Fut>(self, interval: Duration, collect: F) -> PublisherHandle
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Vec<Datum>> + Send,
    {
        let stop = Arc::new(Notify::new());
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut failing = false;
            loop {
                let last = tokio::select! {
                    _ = tokio::time::sleep(interval) => false,
                    _ = stopped.notified() => true,
                };
                let data = collect().await;
                if !data.is_empty() {
                    match self.put(&data).await {
                        Ok(()) => failing = false,
                        Err(e) if !failing => {
                            failing = true;
                            tracing::warn!(error = %e, namespace = %self.namespace, "cannot publish metrics to CloudWatch; retrying at the next interval");
                        }
                        Err(_) => {}
                    }
                }
                if last {
                    return;
                }
            }
        });
        PublisherHandle { stop, task }
    }
}

/// A running publisher.
pub struct PublisherHandle {
    stop: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl PublisherHandle {
    /// Publishes one last time and stops, waiting at most `timeout`.
    pub async fn shutdown(self, timeout: Duration) {
        self.stop.notify_one();
        let abort = self.task.abort_handle();
        if tokio::time::timeout(timeout, self.task).await.is_err() {
            abort.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::RetryPolicy;
    use crate::mock::MockServer;
    use mlops_core::ToolMetrics;

    #[tokio::test]
    async fn tool_windows_become_flattened_query_parameters() {
        let m = ToolMetrics::default();
        m.record("load_dataset", "success", Duration::from_millis(4));
        m.record("load_dataset", "not_found", Duration::from_millis(2));
        let data = tool_data(&m.take_window());
        assert_eq!(data.len(), 3);
        let server = MockServer::start(vec![(200, "<PutMetricDataResponse/>")]).await;
        let config = AwsConfig::with_static_credentials("us-east-1", "AKID", "sk-123456")
            .unwrap()
            .with_endpoint(&server.url())
            .unwrap()
            .with_retry(RetryPolicy {
                max_attempts: 1,
                ..crate::client::AWS_RETRY
            });
        MetricsPublisher::new(&config, "Test NS")
            .put(&data)
            .await
            .unwrap();
        let body = String::from_utf8(server.requests().remove(0).body).unwrap();
        let params: BTreeMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(params["Action"], "PutMetricData");
        assert_eq!(params["Namespace"], "Test NS");
        assert_eq!(params["MetricData.member.1.MetricName"], "ToolCalls");
        assert_eq!(params["MetricData.member.1.Value"], "2");
        assert_eq!(
            params["MetricData.member.1.Dimensions.member.1.Value"],
            "load_dataset"
        );
        assert_eq!(params["MetricData.member.2.Value"], "1");
        assert_eq!(params["MetricData.member.3.Unit"], "Milliseconds");
        assert_eq!(
            params["MetricData.member.3.StatisticValues.SampleCount"],
            "2"
        );
        assert_eq!(params["MetricData.member.3.StatisticValues.Sum"], "6");
        assert_eq!(params["MetricData.member.3.StatisticValues.Minimum"], "2");
        assert_eq!(params["MetricData.member.3.StatisticValues.Maximum"], "4");
    }
}
