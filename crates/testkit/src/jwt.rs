//! Bearer tokens for tests of services running with `auth.mode = "jwt"` and an HS256
//! secret: [`env`] configures a service (a child process) to accept them, [`Token`] mints
//! one (any role, expired, wrong issuer or audience, bad signature), [`Bearer`] attaches one
//! to every call of a tonic client.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use tonic::metadata::{Ascii, MetadataValue};

/// The HS256 secret services under test accept.
pub const SECRET: &str = "psirt-test-secret-that-is-long-enough-for-hs256";
/// The `iss` services under test require.
pub const ISSUER: &str = "https://idp.test/realms/psirt";
/// The `aud` services under test require.
pub const AUDIENCE: &str = "psirt";
/// The claim holding product scopes (`auth.scopes_claim`'s default).
pub const SCOPES_CLAIM: &str = "psirt_products";

/// The `PSIRT_*` variables that make a service authenticate with [`SECRET`], [`ISSUER`]
/// and [`AUDIENCE`].
pub fn env() -> Vec<(&'static str, String)> {
    vec![
        ("PSIRT_AUTH__MODE", "jwt".to_owned()),
        ("PSIRT_AUTH__HS256_SECRET", SECRET.to_owned()),
        ("PSIRT_AUTH__ISSUER", ISSUER.to_owned()),
        ("PSIRT_AUTH__AUDIENCE", AUDIENCE.to_owned()),
    ]
}

/// A token to mint: by default valid for an hour, from [`ISSUER`] for [`AUDIENCE`],
/// signed with [`SECRET`], with every product in scope (`"psirt_products": ["*"]`).
#[derive(Debug, Clone)]
pub struct Token {
    subject: String,
    roles: Vec<String>,
    products: Vec<String>,
    issuer: String,
    audience: String,
    secret: String,
    expires_in_secs: i64,
}

impl Token {
    /// A token of `subject` holding `roles` (claim values such as `"analyst"`).
    pub fn new(subject: &str, roles: &[&str]) -> Self {
        Self {
            subject: subject.to_owned(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            products: vec!["*".to_owned()],
            issuer: ISSUER.to_owned(),
            audience: AUDIENCE.to_owned(),
            secret: SECRET.to_owned(),
            expires_in_secs: 3600,
        }
    }

    /// An admin's token, every product in scope.
    pub fn admin() -> Self {
        Self::new("e2e-admin", &["admin"])
    }

    /// The product scopes (`psirt_products`) instead of `*`.
    #[must_use]
    pub fn products(mut self, products: &[&str]) -> Self {
        self.products = products.iter().map(|p| (*p).to_owned()).collect();
        self
    }

    /// Another `iss`.
    #[must_use]
    pub fn issuer(mut self, issuer: &str) -> Self {
        issuer.clone_into(&mut self.issuer);
        self
    }

    /// Another `aud`.
    #[must_use]
    pub fn audience(mut self, audience: &str) -> Self {
        audience.clone_into(&mut self.audience);
        self
    }

    /// Signed with another secret (a bad signature for the services under test).
    #[must_use]
    pub fn signed_with(mut self, secret: &str) -> Self {
        secret.clone_into(&mut self.secret);
        self
    }

    /// Expired an hour ago (well beyond any leeway).
    #[must_use]
    pub fn expired(mut self) -> Self {
        self.expires_in_secs = -3600;
        self
    }

    /// The encoded JWT.
    pub fn mint(&self) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs();
        let now = i64::try_from(now).expect("seconds fit i64");
        let claims = serde_json::json!({
            "sub": self.subject,
            "roles": self.roles,
            SCOPES_CLAIM: self.products,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + self.expires_in_secs,
        });
        jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(self.secret.as_bytes()))
            .expect("token encodes")
    }

    /// The `authorization` header value, `Bearer <jwt>`.
    pub fn header(&self) -> MetadataValue<Ascii> {
        format!("Bearer {}", self.mint()).parse().expect("a JWT is a valid header value")
    }
}

/// A tonic interceptor adding `authorization: Bearer <token>` to every call:
/// `XClient::with_interceptor(channel, Bearer::new(&Token::admin()))`, or
/// `InterceptedService::new(channel, bearer)`.
#[derive(Clone, Debug)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    /// Sends `token` (minted once, now).
    pub fn new(token: &Token) -> Self {
        Self(Some(token.header()))
    }

    /// Sends no token.
    pub fn none() -> Self {
        Self(None)
    }

    /// Sends this raw header value (`Bearer <anything>`).
    pub fn raw(value: &str) -> Self {
        Self(Some(value.parse().expect("header value")))
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_carry_the_claims_and_fail_as_asked() {
        let decode = |token: &str, secret: &str| {
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
            validation.set_issuer(&[ISSUER]);
            validation.set_audience(&[AUDIENCE]);
            jsonwebtoken::decode::<serde_json::Value>(
                token,
                &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
                &validation,
            )
        };
        let ok = decode(&Token::new("a", &["analyst"]).mint(), SECRET).expect("valid").claims;
        assert_eq!(ok["roles"], serde_json::json!(["analyst"]));
        assert_eq!(ok[SCOPES_CLAIM], serde_json::json!(["*"]));
        assert!(decode(&Token::admin().expired().mint(), SECRET).is_err());
        assert!(decode(&Token::admin().issuer("https://other").mint(), SECRET).is_err());
        assert!(decode(&Token::admin().audience("other").mint(), SECRET).is_err());
        assert!(
            decode(&Token::admin().signed_with("another-secret-another-secret-xx").mint(), SECRET).is_err()
        );
    }
}
