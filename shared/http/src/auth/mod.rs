//! Who is calling and what they may do, decided before any handler runs.
//!
//! Every route except health and schema declares the scope it needs ([`crate::Endpoint::scope`]);
//! the guard (`crate::middleware::protect`) puts the [`Authenticator`] in front of it. The authenticator gets verified claims in
//! one of two ways: it verifies the bearer JWT itself ([`JwtVerifier`]: local server, or a function
//! with `VERIFY_JWT_IN_FUNCTION=true`), or it reads the claims that API Gateway's JWT authorizer
//! verified (the default on Lambda). Either way the same rules follow: the scope, then the
//! organisation, which becomes the request's [`plan::Tenant`]. The use cases already confine every
//! read, write, listing (and later search) to that tenant, through `CallerContext`.

mod claims;
pub mod config;
mod crypto;
#[cfg(feature = "local-issuer")]
pub mod issuer;
pub mod jwks;
mod verified;
mod verify;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use axum::http::{Extensions, HeaderMap, header};
use jsonwebtoken::jwk::JwkSet;

pub use claims::Principal;
#[cfg(feature = "local-issuer")]
pub use issuer::{Grant, IssuerError, KeyOrigin, LocalIssuer};
pub use jwks::{JwksCache, JwksSource, JwksTiming};
pub use verify::{CLOCK_SKEW_SECONDS, JwtRules, JwtVerifier};

use self::config::{AuthConfig, JwksLocation};

/// What a route lets a caller do. Reads (and searches) need `plans:read`, writes `plans:write`;
/// neither implies the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    PlansRead,
    PlansWrite,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PlansRead => "plans:read",
            Self::PlansWrite => "plans:write",
        }
    }
}

impl Scope {
    pub const ALL: [Scope; 2] = [Scope::PlansRead, Scope::PlansWrite];

    pub fn parse(name: &str) -> Option<Scope> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == name)
    }
}

/// The names the issuer gives the two scopes (`JWT_READ_SCOPE`, `JWT_WRITE_SCOPE`): `plans:read`
/// and `plans:write` by default; Cognito writes a resource server's scopes as
/// `<identifier>/<scope>`, e.g. `healthplan/plans.read`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeNames {
    pub read: String,
    pub write: String,
}

impl Default for ScopeNames {
    fn default() -> Self {
        Self { read: Scope::PlansRead.as_str().to_owned(), write: Scope::PlansWrite.as_str().to_owned() }
    }
}

impl ScopeNames {
    /// The name a token carries for `scope`.
    pub fn name(&self, scope: Scope) -> &str {
        match scope {
            Scope::PlansRead => &self.read,
            Scope::PlansWrite => &self.write,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request was not let through. Statuses and problem types are decided in `problem.rs`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// 401: no usable bearer token, or one that does not verify.
    #[error("{}", .0.description())]
    InvalidToken(TokenRejection),
    /// 403: a valid token without the scope the route needs, by the name the issuer gives it
    /// (`JWT_READ_SCOPE` / `JWT_WRITE_SCOPE`), which the challenge names too.
    #[error("this route needs the scope '{0}', which the token does not grant")]
    InsufficientScope(String),
    /// 403: tenant isolation is on and the token names no organisation in this claim.
    #[error("the token has no '{0}' claim naming your organisation, which this API requires")]
    NoOrganisation(String),
    /// 503: the signing keys could not be loaded yet (the JWKS endpoint is unreachable).
    #[error("the token signing keys could not be loaded; retry shortly")]
    KeysUnavailable,
}

/// The reason a token was refused. The descriptions are fixed texts, safe to send in
/// `WWW-Authenticate` (no quotes or backslashes) and never echo the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    Missing,
    Malformed,
    AlgorithmNotAccepted,
    NoKeyId,
    UnknownKey,
    BadSignature,
    Expired,
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    MissingClaim,
    NoAuthorizerClaims,
    NotConfigured,
}

impl AuthError {
    /// The refusal's `auth_refusals_total` reason: a fixed snake_case name, never the token or
    /// a claim's value.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidToken(rejection) => rejection.reason(),
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::NoOrganisation(_) => "no_organisation",
            Self::KeysUnavailable => "keys_unavailable",
        }
    }
}

impl TokenRejection {
    /// The rejection's metric reason (see [`AuthError::reason`]).
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::AlgorithmNotAccepted => "algorithm_not_accepted",
            Self::NoKeyId => "no_key_id",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::MissingClaim => "missing_claim",
            Self::NoAuthorizerClaims => "no_authorizer_claims",
            Self::NotConfigured => "not_configured",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::Missing => "this route needs an Authorization: Bearer token",
            Self::Malformed => "the bearer token is not a well-formed JWT",
            Self::AlgorithmNotAccepted => "the token's signing algorithm is not accepted",
            Self::NoKeyId => "the token header names no signing key (kid)",
            Self::UnknownKey => "the token was signed with an unknown key",
            Self::BadSignature => "the token signature is invalid",
            Self::Expired => "the token has expired",
            Self::NotYetValid => "the token is not valid yet",
            Self::WrongIssuer => "the token was issued by an untrusted issuer",
            Self::WrongAudience => "the token is not intended for this API",
            Self::MissingClaim => "the token lacks a required claim (exp, iss or aud)",
            Self::NoAuthorizerClaims => "no verified token claims reached this function",
            Self::NotConfigured => "authentication is not configured for this deployment",
        }
    }
}

impl From<TokenRejection> for AuthError {
    fn from(reason: TokenRejection) -> Self {
        Self::InvalidToken(reason)
    }
}

/// A setup failure at cold start (never on a request).
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("cannot build the JWKS HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[cfg(feature = "local-issuer")]
    #[error(transparent)]
    Issuer(#[from] IssuerError),
    #[cfg(not(feature = "local-issuer"))]
    #[error("this build has no local development issuer: set JWKS_URL, JWT_ISSUER and JWT_AUDIENCE")]
    NoLocalIssuer,
}

/// What the authorizer cross-checks in API Gateway's verified claims. The gateway already enforced
/// issuer and audience; when `JWT_ISSUER` / `JWT_AUDIENCE` are also set for the function, a
/// mismatch (a route wired to the wrong authorizer) is refused too. Empty lists check nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayRules {
    pub issuers: Vec<String>,
    pub audiences: Vec<String>,
}

/// How claims beyond the signature are read: the organisation claim and default scopes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimRules {
    /// `ORG_CLAIM`: the claim naming the caller's organisation; `None` turns isolation off.
    pub org_claim: Option<String>,
    /// `JWT_DEFAULT_SCOPES`: granted to tokens that carry no `scope` or `scp` claim at all (Google
    /// ID tokens carry none). Only allowed with `ORG_CLAIM`, so it never reaches just anyone the
    /// issuer knows.
    pub default_scopes: Vec<Scope>,
    /// What the issuer calls the scopes (`JWT_READ_SCOPE`, `JWT_WRITE_SCOPE`).
    pub scope_names: ScopeNames,
}

impl ClaimRules {
    /// Tenant isolation on `claim`, no default scopes.
    pub fn isolated_by(claim: &str) -> Self {
        Self { org_claim: Some(claim.to_owned()), ..Self::default() }
    }
}

/// Decides, per request, whether the caller gets through and as which tenant. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    mode: Mode,
    claims: ClaimRules,
    /// The local issuer's public keys, served by the local server at `/.well-known/jwks.json`.
    published: Option<JwkSet>,
}

enum Mode {
    Verify(JwtVerifier),
    Gateway(GatewayRules),
    /// Nothing configured: every protected route answers 401 (fail closed).
    RefuseAll,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator").field("mode", &self.describe()).field("claims", &self.inner.claims).finish()
    }
}

impl Authenticator {
    fn new(mode: Mode, claims: ClaimRules, published: Option<JwkSet>) -> Self {
        Self { inner: Arc::new(Inner { mode, claims, published }) }
    }

    /// Refuses every protected request: what a process gets until it configures authentication.
    pub fn refuse_all() -> Self {
        Self::new(Mode::RefuseAll, ClaimRules::default(), None)
    }

    /// Verifies bearer tokens in this process.
    pub fn verifying(verifier: JwtVerifier, claims: ClaimRules) -> Self {
        Self::new(Mode::Verify(verifier), claims, None)
    }

    /// Trusts the claims API Gateway's JWT authorizer verified (and refuses requests without them).
    pub fn gateway(rules: GatewayRules, claims: ClaimRules) -> Self {
        Self::new(Mode::Gateway(rules), claims, None)
    }

    /// Verifies the tokens of a local issuer (its key is already in memory: no JWKS fetch) and
    /// publishes its JWKS.
    #[cfg(feature = "local-issuer")]
    pub fn local(issuer: &LocalIssuer, algorithms: Vec<jsonwebtoken::Algorithm>, claims: ClaimRules) -> Self {
        let jwks = issuer.jwks();
        let rules = JwtRules { issuers: vec![issuer.issuer().to_owned()], audiences: vec![issuer.audience().to_owned()], algorithms };
        let verifier = JwtVerifier::new(Arc::new(JwksCache::preloaded(&jwks)), &rules);
        Self::new(Mode::Verify(verifier), claims, Some(jwks))
    }

    /// The authenticator the configuration asks for. Never touches the network: a JWKS URL is
    /// fetched on the first request that needs it. The local issuer's key is created on first use.
    pub fn from_config(auth: &AuthConfig, claims: ClaimRules) -> Result<Self, AuthSetupError> {
        Ok(match auth {
            AuthConfig::Verify(jwt) => {
                let source = match &jwt.jwks {
                    JwksLocation::Url(url) => JwksSource::url(url)?,
                    JwksLocation::File(path) => JwksSource::File(path.clone()),
                };
                let keys = Arc::new(JwksCache::new(source, JwksTiming::default()));
                Self::verifying(JwtVerifier::new(keys, &jwt.rules), claims)
            }
            AuthConfig::Gateway(rules) => Self::gateway(rules.clone(), claims),
            #[cfg(not(feature = "local-issuer"))]
            AuthConfig::LocalIssuer(_) => return Err(AuthSetupError::NoLocalIssuer),
            #[cfg(feature = "local-issuer")]
            AuthConfig::LocalIssuer(local) => {
                let (issuer, origin) = LocalIssuer::load_or_create(&local.key_dir, &local.issuer, &local.audience, local.algorithm)?;
                tracing::info!(
                    key = %issuer.key_path(&local.key_dir).display(),
                    kid = issuer.kid(),
                    issuer = issuer.issuer(),
                    audience = issuer.audience(),
                    "development signing key {}",
                    if origin == KeyOrigin::Created { "created" } else { "loaded" }
                );
                Self::local(&issuer, local.algorithms.clone(), claims)
            }
        })
    }

    /// For the startup log.
    pub fn describe(&self) -> &'static str {
        match self.inner.mode {
            Mode::Verify(_) if self.inner.published.is_some() => "verifying tokens of the local development issuer",
            Mode::Verify(_) => "verifying bearer tokens in this process",
            Mode::Gateway(_) => "trusting the API Gateway JWT authorizer's verified claims",
            Mode::RefuseAll => "not configured: every protected route answers 401",
        }
    }

    pub fn org_claim(&self) -> Option<&str> {
        self.inner.claims.org_claim.as_deref()
    }

    /// The public keys of the local issuer, if that is what this authenticator trusts.
    pub fn published_jwks(&self) -> Option<&JwkSet> {
        self.inner.published.as_ref()
    }

    /// Lets the request through (returning who it is) or says why not. Only the `Authorization`
    /// header carries a token: a token in the query string is ignored.
    pub async fn authorize(&self, headers: &HeaderMap, extensions: &Extensions, scope: Scope) -> Result<Principal, AuthError> {
        let rules = &self.inner.claims;
        let principal = match &self.inner.mode {
            Mode::Verify(verifier) => {
                let token = bearer_token(headers)?;
                let claims = verifier.verify(token).await?;
                Principal::from_token(&claims, rules)
            }
            Mode::Gateway(gateway) => {
                let Some((claims, scopes)) = authorizer_claims(extensions) else {
                    return Err(TokenRejection::NoAuthorizerClaims.into());
                };
                claims::check_gateway(claims, gateway)?;
                Principal::from_gateway(claims, scopes, rules)
            }
            Mode::RefuseAll => return Err(TokenRejection::NotConfigured.into()),
        };
        if !principal.has_scope(scope) {
            return Err(AuthError::InsufficientScope(rules.scope_names.name(scope).to_owned()));
        }
        if let Some(claim) = &rules.org_claim
            && principal.tenant.confined_to().is_none()
        {
            return Err(AuthError::NoOrganisation(claim.clone()));
        }
        Ok(principal)
    }
}

/// The longest bearer token read; anything longer is refused before any decoding work.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The token of the one `Authorization: Bearer <token>` header (RFC 6750 section 2.1).
fn bearer_token(headers: &HeaderMap) -> Result<&str, TokenRejection> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        // None, or several: an ambiguous request is not guessed at.
        return Err(if headers.contains_key(header::AUTHORIZATION) { TokenRejection::Malformed } else { TokenRejection::Missing });
    };
    let value = value.to_str().map_err(|_| TokenRejection::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(TokenRejection::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(TokenRejection::Missing);
    }
    let token = token.trim();
    let token68 = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b);
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES || !token.bytes().all(token68) {
        return Err(TokenRejection::Malformed);
    }
    Ok(token)
}

/// The claims (and scopes) API Gateway's JWT authorizer verified for this request, if any.
fn authorizer_claims(extensions: &Extensions) -> Option<(&HashMap<String, String>, &[String])> {
    match extensions.get::<lambda_http::request::RequestContext>()? {
        lambda_http::request::RequestContext::ApiGatewayV2(context) => {
            let jwt = context.authorizer.as_ref()?.jwt.as_ref()?;
            // An authorizer that verified a token always passes at least iss/sub/exp; an empty map
            // is a request that did not go through one.
            (!jwt.claims.is_empty()).then(|| (&jwt.claims, jwt.scopes.as_deref().unwrap_or_default()))
        }
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

#[cfg(all(test, feature = "local-issuer"))]
mod tests;
