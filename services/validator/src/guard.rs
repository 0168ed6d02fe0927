//! The SSRF guard of the validator: a validator never checks loopback, private,
//! link-local or cloud metadata addresses, unless started with
//! `--allow-private-targets` (dev only). The address rules live in
//! `overlaps_shared::ssrf` (the server refuses the same targets at registration).
//!
//! It is enforced twice: on the addresses a name resolves to before the request,
//! and in the resolver the HTTP client uses for every connection (redirects
//! included), so DNS rebinding between the two cannot slip through.

pub use overlaps_shared::ssrf::{DnsFailure, ForbiddenTarget, is_forbidden, resolve};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The HTTP client's resolver, applying the guard to every connection.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    /// Dev networks check local targets.
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addrs = resolve(name.as_str(), allow_private).await?;
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}
