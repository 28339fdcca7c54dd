//! Bearer JWT verification: signature against the issuer's cached keys, then `iss`, `aud`, `exp`
//! and `nbf`. The algorithm is the configured one that the token asks for; a token can never
//! choose one outside the list (no `none`, no HMAC with a public key as the secret).

use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::jwks::JwksCache;
use super::verified::{self, Verified, VerifiedTokens};
use super::{AuthError, TokenRejection};

/// Clock skew tolerated on `exp` and `nbf`.
pub const CLOCK_SKEW_SECONDS: u64 = 60;

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtRules {
    /// `JWT_ISSUER`: accepted `iss` values (Google uses both `https://accounts.google.com` and
    /// `accounts.google.com`).
    pub issuers: Vec<String>,
    /// `JWT_AUDIENCE`: accepted `aud` values; the token's `aud` must contain one.
    pub audiences: Vec<String>,
    /// `JWT_ALGORITHMS`: asymmetric algorithms only (checked by the configuration).
    pub algorithms: Vec<Algorithm>,
}

/// Verifies tokens against one issuer's keys.
#[derive(Debug)]
pub struct JwtVerifier {
    keys: Arc<JwksCache>,
    /// One validation per accepted algorithm, built once: jsonwebtoken wants every algorithm of a
    /// validation to be of the key's family, so each token is checked against its own.
    validations: Vec<(Algorithm, Validation)>,
    /// Tokens that verified, until they expire (`verified.rs`).
    verified: VerifiedTokens,
}

impl JwtVerifier {
    pub fn new(keys: Arc<JwksCache>, rules: &JwtRules) -> Self {
        super::crypto::install();
        let validations = rules
            .algorithms
            .iter()
            .filter(|alg| matches!(alg.family(), jsonwebtoken::AlgorithmFamily::Rsa | jsonwebtoken::AlgorithmFamily::Ec))
            .map(|&alg| {
                let mut validation = Validation::new(alg);
                // Empty lists accept nothing: a verifier built without rules fails closed.
                validation.set_issuer(&rules.issuers);
                validation.set_audience(&rules.audiences);
                validation.set_required_spec_claims(&["exp", "iss", "aud"]);
                validation.leeway = CLOCK_SKEW_SECONDS;
                validation.validate_exp = true;
                validation.validate_nbf = true;
                (alg, validation)
            })
            .collect();
        Self { keys, validations, verified: VerifiedTokens::default() }
    }

    /// The token's claims, if it verifies. Once its key is cached this does no I/O; once the
    /// token itself has verified, no signature check either, until it expires or its key leaves
    /// the issuer's set.
    pub async fn verify(&self, token: &str) -> Result<Arc<Map<String, Value>>, AuthError> {
        let digest = verified::digest(token);
        let now = verified::unix_now();
        if let Some(hit) = self.verified.get(&digest, now) {
            match self.keys.key(&hit.kid).await {
                Ok(key) if Arc::ptr_eq(&key, &hit.key) => return Ok(hit.claims),
                _ => self.verified.remove(&digest),
            }
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenRejection::Malformed)?;
        let Some((_, validation)) = self.validations.iter().find(|(alg, _)| *alg == header.alg) else {
            return Err(TokenRejection::AlgorithmNotAccepted.into());
        };
        let kid = header.kid.as_deref().ok_or(TokenRejection::NoKeyId)?;
        let key = self.keys.key(kid).await?;
        if !key.accepts(header.alg) {
            return Err(TokenRejection::AlgorithmNotAccepted.into());
        }
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, validation).map_err(|e| rejection(e.kind()))?;
        let claims = Arc::new(data.claims);
        if let Some(entry) = Verified::new(claims.clone(), kid, key, now) {
            self.verified.insert(digest, entry, now);
        }
        Ok(claims)
    }

    /// How many verified tokens are remembered.
    #[cfg(test)]
    pub(crate) fn remembered(&self) -> usize {
        self.verified.len()
    }
}

fn rejection(kind: &ErrorKind) -> TokenRejection {
    match kind {
        ErrorKind::InvalidSignature => TokenRejection::BadSignature,
        ErrorKind::ExpiredSignature => TokenRejection::Expired,
        ErrorKind::ImmatureSignature => TokenRejection::NotYetValid,
        ErrorKind::InvalidIssuer => TokenRejection::WrongIssuer,
        ErrorKind::InvalidAudience => TokenRejection::WrongAudience,
        ErrorKind::MissingRequiredClaim(_) => TokenRejection::MissingClaim,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm | ErrorKind::InvalidKeyFormat => TokenRejection::AlgorithmNotAccepted,
        _ => TokenRejection::Malformed,
    }
}
