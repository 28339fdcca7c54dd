//! Tenant isolation: which organisation's plans a caller may see and write.

/// The organisation a caller is confined to, or none (isolation off, or a trusted caller).
/// Another organisation's plan is invisible: it reads as absent (404), never as forbidden.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tenant {
    org: Option<String>,
}

impl Tenant {
    /// Sees every plan.
    pub fn unrestricted() -> Self {
        Self { org: None }
    }

    /// Sees and writes only plans whose `_org` is `org`.
    pub fn org(org: impl Into<String>) -> Self {
        Self { org: Some(org.into()) }
    }

    /// The organisation to filter on, when confined.
    pub fn confined_to(&self) -> Option<&str> {
        self.org.as_deref()
    }

    pub fn sees(&self, plan_org: &str) -> bool {
        self.org.as_deref().is_none_or(|org| org == plan_org)
    }
}

/// Who is asking, as far as the use cases care: the organisation they are confined to, and the
/// request id (with the X-Ray trace id on Lambda) that change events carry so that a change can be
/// followed from request to index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    pub tenant: Tenant,
    pub request_id: String,
    /// The invocation's X-Ray trace header (`Root=1-...;Parent=...;Sampled=...`), on Lambda.
    pub trace_id: Option<String>,
}

impl Caller {
    pub fn new(tenant: Tenant, request_id: impl Into<String>) -> Self {
        Self { tenant, request_id: request_id.into(), trace_id: None }
    }

    pub fn traced(mut self, trace_id: Option<String>) -> Self {
        self.trace_id = trace_id;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confinement() {
        assert!(Tenant::unrestricted().sees("a.com"));
        assert!(Tenant::org("a.com").sees("a.com"));
        assert!(!Tenant::org("a.com").sees("b.com"));
        assert!(!Tenant::org("a.com").sees("A.com"), "orgs compare exactly");
        assert_eq!(Tenant::default(), Tenant::unrestricted());
    }
}
