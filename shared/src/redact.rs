//! Keeps secrets out of what is stored, logged or shown: RPC endpoints and webhook
//! URLs often carry an API key in their path, query or user info, and errors from
//! HTTP clients quote the URL they failed on.

/// What replaces the path, query and credentials of a URL.
const HIDDEN: &str = "<redacted>";

/// `message` with every `scheme://…` URL cut down to its scheme and host
/// (`https://rpc.example/<redacted>`): user info, path and query may be secrets.
pub fn strip_urls(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("://") {
        let scheme_start = scheme_start(&rest[..at]);
        let end = at + 3 + url_len(&rest[at + 3..]);
        if scheme_start == at {
            // No scheme before `://`: not a URL, keep it as it is.
            out.push_str(&rest[..at + 3]);
            rest = &rest[at + 3..];
            continue;
        }
        out.push_str(&rest[..scheme_start]);
        out.push_str(&redact_url(&rest[scheme_start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// One URL reduced to `scheme://host[:port]/<redacted>` (just `<redacted>` when
/// it does not parse): safe to print in settings and errors.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => match parsed.host_str() {
            Some(host) => match parsed.port() {
                Some(port) => format!("{}://{host}:{port}/{HIDDEN}", parsed.scheme()),
                None => format!("{}://{host}/{HIDDEN}", parsed.scheme()),
            },
            None => format!("{}:{HIDDEN}", parsed.scheme()),
        },
        Err(_) => HIDDEN.to_owned(),
    }
}

/// Where the scheme ending at `before.len()` starts (`before.len()` when none).
fn scheme_start(before: &str) -> usize {
    let bytes = before.as_bytes();
    let mut start = bytes.len();
    while start > 0 && is_scheme_byte(bytes[start - 1]) {
        start -= 1;
    }
    // A scheme begins with a letter.
    while start < bytes.len() && !bytes[start].is_ascii_alphabetic() {
        start += 1;
    }
    start
}

fn is_scheme_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
}

/// The length of the URL text after `://`: up to whitespace, a quote or a closing
/// bracket, without trailing punctuation.
fn url_len(after: &str) -> usize {
    let end = after
        .find(|c: char| {
            c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>' | ')' | ']' | '}')
        })
        .unwrap_or(after.len());
    after[..end]
        .trim_end_matches(['.', ',', ';', ':', '!', '?'])
        .len()
}

/// A secret setting (API key, private key material): its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reqwest_style_error_loses_credentials_path_and_query() {
        let message = "error sending request for url \
                       (http://user:secret-key@127.0.0.1:1/secret-path?key=secret): connection refused";
        let stripped = strip_urls(message);
        assert!(!stripped.contains("secret"), "{stripped}");
        assert_eq!(
            stripped,
            "error sending request for url (http://127.0.0.1:1/<redacted>): connection refused"
        );
    }

    #[test]
    fn every_url_in_a_message_is_stripped_and_the_rest_kept() {
        let message = "tried https://hooks.slack.com/services/T0/B0/XXXSECRET, \
                       then wss://node.example/v3/apikey.";
        assert_eq!(
            strip_urls(message),
            "tried https://hooks.slack.com/<redacted>, then wss://node.example/<redacted>."
        );
    }

    #[test]
    fn smtp_urls_and_quoted_urls_are_stripped() {
        let stripped = strip_urls(r#"SMTP_URL "smtps://alerts:hunter2@mail.example:465" failed"#);
        assert_eq!(
            stripped,
            r#"SMTP_URL "smtps://mail.example:465/<redacted>" failed"#
        );
    }

    #[test]
    fn text_without_urls_is_unchanged() {
        for text in ["HTTP 503", "a :// without scheme", "ratio 3:1", ""] {
            assert_eq!(strip_urls(text), text);
        }
    }

    #[test]
    fn a_url_that_does_not_parse_is_hidden_whole() {
        assert_eq!(strip_urls("at http://[broken/secret"), "at <redacted>");
        assert_eq!(redact_url("not a url"), "<redacted>");
    }

    #[test]
    fn a_secret_never_shows_in_debug() {
        let secret = Secret::new("ovl_0123456789");
        assert_eq!(format!("{secret:?}"), "Secret(<hidden>)");
        assert_eq!(secret.expose(), "ovl_0123456789");
    }
}
