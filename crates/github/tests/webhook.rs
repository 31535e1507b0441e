//! The webhook endpoint with real HMAC signatures computed here.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use hmac::{Hmac, Mac};
use mlops_github::{ApprovalCommand, WebhookConfig, WebhookEvent, WebhookState, webhook_router};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;
use tower::ServiceExt;

const SECRET: &str = "whsec_test_secret_for_webhooks";

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

struct Hook {
    app: axum::Router,
    rx: mpsc::Receiver<WebhookEvent>,
}

fn hook(queue: usize) -> Hook {
    let (tx, rx) = mpsc::channel(queue);
    let mut cfg = WebhookConfig::new(SECRET);
    cfg.max_body_bytes = 64 * 1024;
    let state = WebhookState::new(cfg, tx).unwrap();
    Hook {
        app: webhook_router(state),
        rx,
    }
}

fn request(event: &str, delivery: &str, body: &[u8], signature: Option<&str>) -> Request<Body> {
    let mut r = Request::post("/webhooks/github")
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery);
    if let Some(s) = signature {
        r = r.header("x-hub-signature-256", s);
    }
    r.body(Body::from(body.to_vec())).unwrap()
}

fn signed(event: &str, delivery: &str, payload: &Value) -> Request<Body> {
    let body = serde_json::to_vec(payload).unwrap();
    let sig = sign(SECRET, &body);
    request(event, delivery, &body, Some(&sig))
}

async fn send(app: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn opened(labels: &[&str]) -> Value {
    json!({
        "action": "opened",
        "issue": {
            "number": 42,
            "title": "Train churn",
            "body": "```yaml\ndataset: d.csv\n```",
            "state": "open",
            "labels": labels.iter().map(|l| json!({"name": l})).collect::<Vec<_>>(),
            "user": {"login": "ana"},
            "html_url": "https://github.com/acme/models/issues/42"
        },
        "repository": {"full_name": "acme/models"},
        "sender": {"login": "ana"}
    })
}

fn comment(body: &str, association: &str) -> Value {
    json!({
        "action": "created",
        "issue": {"number": 42, "title": "Train churn", "state": "open", "labels": []},
        "comment": {
            "id": 7,
            "body": body,
            "user": {"login": "bob", "type": "User"},
            "author_association": association
        },
        "repository": {"full_name": "acme/models"}
    })
}

#[tokio::test]
async fn a_signed_training_issue_is_queued() {
    let mut h = hook(8);
    let (status, body) = send(
        &h.app,
        signed("issues", "d-1", &opened(&["bug", "mlops:train"])),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "queued");
    match h.rx.try_recv().unwrap() {
        WebhookEvent::TrainingRequested {
            delivery_id,
            repository,
            action,
            issue,
            sender,
        } => {
            assert_eq!(delivery_id, "d-1");
            assert_eq!(repository.as_deref(), Some("acme/models"));
            assert_eq!(action, "opened");
            assert_eq!(issue.number, 42);
            assert_eq!(issue.title, "Train churn");
            assert_eq!(issue.body, "```yaml\ndataset: d.csv\n```");
            assert_eq!(issue.labels, vec!["bug", "mlops:train"]);
            assert_eq!(sender.as_deref(), Some("ana"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn labeled_with_the_train_label_is_queued_other_labels_are_not() {
    let mut h = hook(8);
    let mut p = opened(&["mlops:train"]);
    p["action"] = json!("labeled");
    p["label"] = json!({"name": "mlops:train"});
    let (s, _) = send(&h.app, signed("issues", "d-1", &p)).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert!(matches!(
        h.rx.try_recv().unwrap(),
        WebhookEvent::TrainingRequested { ref action, .. } if action == "labeled"
    ));
    p["label"] = json!({"name": "mlops:running"});
    let (s, body) = send(&h.app, signed("issues", "d-2", &p)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["status"], "ignored");
    let (s, body) = send(&h.app, signed("issues", "d-3", &opened(&["bug"]))).await;
    assert_eq!(
        (s, body["status"].as_str()),
        (StatusCode::OK, Some("ignored"))
    );
    let (s, body) = send(&h.app, signed("push", "d-4", &json!({"ref": "main"}))).await;
    assert_eq!(
        (s, body["status"].as_str()),
        (StatusCode::OK, Some("ignored"))
    );
    assert!(h.rx.try_recv().is_err(), "nothing else queued");
}

#[tokio::test]
async fn commands_from_trusted_users_are_queued() {
    let mut h = hook(8);
    let (s, _) = send(
        &h.app,
        signed(
            "issue_comment",
            "c-1",
            &comment("/approve retry with more trees", "MEMBER"),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    match h.rx.try_recv().unwrap() {
        WebhookEvent::Command {
            issue_number,
            command,
            arguments,
            user,
            author_association,
            comment_id,
            ..
        } => {
            assert_eq!(issue_number, 42);
            assert_eq!(command, ApprovalCommand::Approve);
            assert_eq!(arguments, "retry with more trees");
            assert_eq!(user, "bob");
            assert_eq!(author_association, "MEMBER");
            assert_eq!(comment_id, 7);
        }
        other => panic!("{other:?}"),
    }
    for (i, (text, assoc)) in [("/reject", "OWNER"), ("/retry", "COLLABORATOR")]
        .into_iter()
        .enumerate()
    {
        let (s, _) = send(
            &h.app,
            signed("issue_comment", &format!("c-ok-{i}"), &comment(text, assoc)),
        )
        .await;
        assert_eq!(s, StatusCode::ACCEPTED);
    }
    assert!(matches!(
        h.rx.try_recv().unwrap(),
        WebhookEvent::Command {
            command: ApprovalCommand::Reject,
            ..
        }
    ));
    assert!(matches!(
        h.rx.try_recv().unwrap(),
        WebhookEvent::Command {
            command: ApprovalCommand::Retry,
            ..
        }
    ));

    // Not trusted, not a command, or not a new comment: ignored.
    for (i, p) in [
        comment("/approve", "CONTRIBUTOR"),
        comment("/approve", "NONE"),
        comment("looks good, /approve", "OWNER"),
        {
            let mut p = comment("/approve", "OWNER");
            p["action"] = json!("edited");
            p
        },
        {
            let mut p = comment("/approve", "OWNER");
            p["issue"]["pull_request"] = json!({"url": "x"});
            p
        },
    ]
    .into_iter()
    .enumerate()
    {
        let (s, body) = send(&h.app, signed("issue_comment", &format!("c-no-{i}"), &p)).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "ignored", "{body}");
    }
    assert!(h.rx.try_recv().is_err());
}

#[tokio::test]
async fn ping_is_answered() {
    let mut h = hook(1);
    let (s, body) = send(
        &h.app,
        signed("ping", "p-1", &json!({"zen": "Keep it simple."})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["status"], "pong");
    assert!(h.rx.try_recv().is_err());
}

#[tokio::test]
async fn bad_signatures_are_rejected_and_nothing_is_queued() {
    let mut h = hook(8);
    let body = serde_json::to_vec(&opened(&["mlops:train"])).unwrap();
    let good = sign(SECRET, &body);

    // Tampered body, signature of the original.
    let mut tampered = body.clone();
    let pos = tampered.iter().position(|b| *b == b'4').unwrap();
    tampered[pos] = b'5';
    let (s, _) = send(&h.app, request("issues", "t-1", &tampered, Some(&good))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Signed with another secret.
    let other = sign("not-the-secret", &body);
    let (s, _) = send(&h.app, request("issues", "t-2", &body, Some(&other))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Missing header, malformed headers, the old SHA-1 header alone.
    let (s, b) = send(&h.app, request("issues", "t-3", &body, None)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(b["error"], "missing X-Hub-Signature-256");
    for sig in [
        "sha256=",
        "sha256=nothex",
        "sha1=abcdef",
        &good[7..],
        &good[..good.len() - 2],
    ] {
        let (s, _) = send(&h.app, request("issues", "t-4", &body, Some(sig))).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{sig}");
    }
    assert!(h.rx.try_recv().is_err(), "nothing queued");

    // The same delivery, correctly signed, is then accepted: failures were not remembered.
    let (s, _) = send(&h.app, request("issues", "t-1", &body, Some(&good))).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert!(h.rx.try_recv().is_ok());
}

#[tokio::test]
async fn replayed_deliveries_are_dropped() {
    let mut h = hook(8);
    let p = opened(&["mlops:train"]);
    let (s, _) = send(&h.app, signed("issues", "same-id", &p)).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (s, body) = send(&h.app, signed("issues", "same-id", &p)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["status"], "duplicate");
    assert!(h.rx.try_recv().is_ok());
    assert!(h.rx.try_recv().is_err(), "queued once");
}

#[tokio::test]
async fn oversized_and_non_json_bodies_are_refused() {
    let mut h = hook(8);
    let big = vec![b' '; 64 * 1024 + 1];
    let sig = sign(SECRET, &big);
    let (s, _) = send(&h.app, request("issues", "big", &big, Some(&sig))).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);

    let text = b"action=opened&issue=42";
    let sig = sign(SECRET, text);
    let (s, b) = send(&h.app, request("issues", "form", text, Some(&sig))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["error"].as_str().unwrap().contains("JSON"));

    let arr = b"[1,2]";
    let sig = sign(SECRET, arr);
    let (s, _) = send(&h.app, request("issues", "arr", arr, Some(&sig))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Signed but missing the event or delivery header.
    let body = serde_json::to_vec(&opened(&["mlops:train"])).unwrap();
    let sig = sign(SECRET, &body);
    let req = Request::post("/webhooks/github")
        .header("x-hub-signature-256", &sig)
        .header("x-github-delivery", "x")
        .body(Body::from(body.clone()))
        .unwrap();
    assert_eq!(send(&h.app, req).await.0, StatusCode::BAD_REQUEST);
    let req = Request::post("/webhooks/github")
        .header("x-hub-signature-256", &sig)
        .header("x-github-event", "issues")
        .body(Body::from(body))
        .unwrap();
    assert_eq!(send(&h.app, req).await.0, StatusCode::BAD_REQUEST);
    assert!(h.rx.try_recv().is_err());

    // Only POST on the one path.
    let req = Request::get("/webhooks/github")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&h.app, req).await.0, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_full_queue_answers_503_and_the_redelivery_is_accepted_later() {
    let mut h = hook(1);
    let p = opened(&["mlops:train"]);
    assert_eq!(
        send(&h.app, signed("issues", "q-1", &p)).await.0,
        StatusCode::ACCEPTED
    );
    let (s, body) = send(&h.app, signed("issues", "q-2", &p)).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(h.rx.try_recv().is_ok());
    // Room again: GitHub's redelivery of q-2 (same id) is queued, not taken for a duplicate.
    assert_eq!(
        send(&h.app, signed("issues", "q-2", &p)).await.0,
        StatusCode::ACCEPTED
    );
    assert!(h.rx.try_recv().is_ok());
}

#[tokio::test]
async fn verify_and_enqueue_is_fast() {
    // A rough guard on the design target (≥ 10,000 deliveries/s on loopback): 2,000 in-process
    // deliveries must take well under a second even in a debug build.
    let (tx, mut rx) = mpsc::channel(4096);
    let app = webhook_router(WebhookState::new(WebhookConfig::new(SECRET), tx).unwrap());
    let p = opened(&["mlops:train"]);
    let body = serde_json::to_vec(&p).unwrap();
    let sig = sign(SECRET, &body);
    let start = std::time::Instant::now();
    for i in 0..2000 {
        let (s, _) = send(
            &app,
            request("issues", &format!("perf-{i}"), &body, Some(&sig)),
        )
        .await;
        assert_eq!(s, StatusCode::ACCEPTED);
    }
    let took = start.elapsed();
    let mut n = 0;
    while rx.try_recv().is_ok() {
        n += 1;
    }
    assert_eq!(n, 2000);
    assert!(took.as_secs_f64() < 5.0, "2,000 deliveries took {took:?}");
}
