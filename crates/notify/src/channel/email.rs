//! Email over SMTP (lettre): STARTTLS and authentication when configured, a multipart message with
//! a plain-text and an HTML part.

use std::sync::OnceLock;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{Channel, ChannelError, Message};
use crate::NotifyError;
use crate::config::EmailConfig;
use crate::template::text_body;

/// Parses one address (`a@example.com` or `Name <a@example.com>`); `what` names it in the error.
pub fn parse_mailbox(what: &str, address: &str) -> Result<Mailbox, NotifyError> {
    address.trim().parse::<Mailbox>().map_err(|_| {
        NotifyError::Invalid(format!(
            "{what}: `{}` is not a valid email address (expected name@example.com or Name <name@example.com>)",
            address.trim()
        ))
    })
}

/// Parses a comma- or semicolon-separated list of addresses; every one must be valid.
pub fn parse_recipients(what: &str, list: &str) -> Result<Vec<String>, NotifyError> {
    let mut out = Vec::new();
    for a in list
        .split([',', ';'])
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        parse_mailbox(what, a)?;
        out.push(a.to_string());
    }
    if out.is_empty() {
        return Err(NotifyError::Invalid(format!(
            "{what}: no email address given"
        )));
    }
    Ok(out)
}

/// The email channel. The SMTP transport (and its TLS setup, which reads the system's root
/// certificates) is built on first use.
pub struct EmailChannel {
    config: EmailConfig,
    timeout: std::time::Duration,
    transport: OnceLock<Result<AsyncSmtpTransport<Tokio1Executor>, String>>,
}

impl EmailChannel {
    pub fn new(config: EmailConfig, timeout: std::time::Duration) -> Result<Self, NotifyError> {
        if url::Host::parse(&config.host).is_err() {
            return Err(NotifyError::Config(format!(
                "SMTP_HOST `{}` is not a valid host name or address",
                config.host
            )));
        }
        Ok(Self {
            config,
            timeout,
            transport: OnceLock::new(),
        })
    }

    fn transport(&self) -> Result<&AsyncSmtpTransport<Tokio1Executor>, ChannelError> {
        let c = &self.config;
        self.transport
            .get_or_init(|| {
                let builder = if c.starttls {
                    AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&c.host)
                        .map_err(|e| format!("SMTP_HOST `{}`: {e}", c.host))?
                } else {
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(c.host.clone())
                };
                let mut builder = builder.port(c.port).timeout(Some(self.timeout));
                if let (Some(user), Some(password)) = (&c.username, &c.password) {
                    builder = builder.credentials(Credentials::new(
                        user.clone(),
                        password.expose().to_string(),
                    ));
                }
                Ok(builder.build())
            })
            .as_ref()
            .map_err(|e| ChannelError::permanent(e.clone()))
    }

    /// The email for a message (also used by tests).
    pub fn build(&self, m: &Message) -> Result<lettre::Message, ChannelError> {
        let to = if m.email_to.is_empty() {
            &self.config.to
        } else {
            &m.email_to
        };
        if to.is_empty() {
            return Err(ChannelError::permanent(
                "no email recipients: set SMTP_TO or pass email_to",
            ));
        }
        let from = parse_mailbox("SMTP_FROM", &self.config.from)
            .map_err(|e| ChannelError::permanent(e.to_string()))?;
        let mut builder = lettre::Message::builder()
            .from(from)
            .subject(m.rendered.title.clone());
        for a in to {
            builder = builder.to(parse_mailbox("recipient", a)
                .map_err(|e| ChannelError::permanent(e.to_string()))?);
        }
        builder
            .multipart(MultiPart::alternative_plain_html(
                text_body(&m.rendered),
                m.rendered.html.clone(),
            ))
            .map_err(|e| ChannelError::permanent(format!("cannot build the email: {e}")))
    }
}

#[async_trait::async_trait]
impl Channel for EmailChannel {
    fn name(&self) -> &'static str {
        "email"
    }
    async fn send(&self, m: &Message) -> Result<(), ChannelError> {
        let mail = self.build(m)?;
        match self.transport()?.send(mail).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(ChannelError::permanent(format!(
                "SMTP server {} refused the message: {e}",
                self.config.host
            ))),
            // A client error is a setup problem that retrying cannot fix (e.g. STARTTLS required
            // but not offered: credentials are never sent in clear).
            Err(e) if e.is_client() => Err(ChannelError::permanent(format!(
                "SMTP delivery via {}:{} is impossible: {e} (SMTP_STARTTLS=false only for a trusted local relay)",
                self.config.host, self.config.port
            ))),
            Err(e) => Err(ChannelError::retryable(format!(
                "SMTP delivery via {}:{} failed: {e}",
                self.config.host, self.config.port
            ))),
        }
    }
}
