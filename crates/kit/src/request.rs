//! Request plumbing every service shares: who is calling, the client's
//! idempotency key, and page tokens in one format.

use tonic::{Request, Status};

use crate::{ApiError, Principal, Role};

/// Longest `request_id`, in characters.
pub const MAX_REQUEST_ID_CHARS: usize = psirt_domain::validation::MAX_REQUEST_ID_CHARS;

/// Longest page token a request may carry, in characters.
pub const MAX_PAGE_TOKEN_CHARS: usize = psirt_domain::validation::MAX_PAGE_TOKEN_CHARS;

// The admin service's replay limit is the one the request-field rules state.
const _: () =
    assert!(psirt_projection::REPLAY_LIMIT == psirt_domain::validation::fields::MAX_REPLAY_SEQUENCES);

/// The authenticated caller the auth layer put on the request.
pub fn principal<T>(request: &Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| ApiError::Unauthenticated("no principal on the request".to_owned()).into())
}

/// The caller, if it has `role`; `PERMISSION_DENIED` otherwise.
pub fn require_role<T>(request: &Request<T>, role: Role) -> Result<Principal, Status> {
    let principal = principal(request)?;
    if !principal.has_role(role) {
        return Err(ApiError::PermissionDenied(format!("requires the {} role", role.as_str())).into());
    }
    Ok(principal)
}

/// The violations of one request's fields, gathered so the caller learns
/// every problem at once (one `google.rpc.BadRequest` field violation each),
/// before the handler reads anything.
#[derive(Debug, Default)]
pub struct Violations(Vec<crate::FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    /// A violation of `field`.
    pub fn push(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(crate::FieldViolation::new(field, description));
    }

    /// `value` by the text rule of its field (a row of
    /// `psirt_domain::validation::fields`); whether it passed.
    pub fn text(&mut self, field: &str, value: &str, rule: psirt_domain::validation::Text) -> bool {
        match rule.problem(value) {
            Some(problem) => {
                self.push(field, format!("{field} {problem}"));
                false
            }
            None => true,
        }
    }

    /// `value` of a syntax its parser checks later, bounded first: at most
    /// `max` characters.
    pub fn max_chars(&mut self, field: &str, value: &str, max: usize) -> bool {
        if value.chars().count() > max {
            self.push(field, format!("{field} must be at most {max} characters"));
            return false;
        }
        true
    }

    /// The domain's violations as they are.
    pub fn extend(&mut self, violations: impl IntoIterator<Item = psirt_domain::FieldViolation>) {
        self.0.extend(violations.into_iter().map(|v| crate::FieldViolation::new(v.field, v.description)));
    }

    /// A violation already made.
    pub fn violation(&mut self, violation: crate::FieldViolation) {
        self.0.push(violation);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many violations so far.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// A required value: a violation of `field` when it is missing; the value.
    pub fn require<T>(&mut self, field: &str, value: Option<T>, description: &str) -> Option<T> {
        if value.is_none() {
            self.push(field, description);
        }
        value
    }

    /// `INVALID_ARGUMENT` with every violation, or nothing.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() { Ok(()) } else { Err(ApiError::InvalidArgument(self.0)) }
    }

    /// [`Self::finish`], then the value [`Self::require`] checked (its absence is
    /// a violation, so past `finish` it is there).
    pub fn finish_with<T>(self, value: Option<T>) -> Result<T, ApiError> {
        self.finish()?;
        value.ok_or_else(|| ApiError::internal("a required value was not checked"))
    }
}

/// A client's idempotency key, trimmed: empty (none given) or 1 to
/// [`MAX_REQUEST_ID_CHARS`] characters of `[A-Za-z0-9._:-]` (a UUID fits),
/// as the API documents it.
pub fn request_id(value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    psirt_domain::validation::check_request_id(value)
        .map_err(|problem| ApiError::invalid_argument("request_id", problem))?;
    Ok(value.to_owned())
}

/// Page tokens, one format for every list: the hex of
/// `p1␟<scope>␟<part>␟<part>…`. The scope binds a token to the query shape it
/// was made for (a sort order, a list name): a token of another order is
/// refused rather than read as a position in this one.
pub mod page_token {
    use super::{ApiError, MAX_PAGE_TOKEN_CHARS};

    const VERSION: &str = "p1";
    const SEPARATOR: char = '\u{1f}';

    /// The token of a keyset position.
    pub fn encode(scope: &str, parts: &[&str]) -> String {
        let mut text = String::from(VERSION);
        for piece in std::iter::once(scope).chain(parts.iter().copied()) {
            text.push(SEPARATOR);
            text.push_str(piece);
        }
        hex::encode(text)
    }

    /// The `parts` parts of a token made by [`encode`] with `scope`;
    /// `INVALID_ARGUMENT` on `page_token` for anything else.
    pub fn decode(token: &str, scope: &str, parts: usize) -> Result<Vec<String>, ApiError> {
        let invalid = || ApiError::invalid_argument("page_token", "not a page token of this query");
        if token.len() > MAX_PAGE_TOKEN_CHARS * 2 {
            return Err(invalid());
        }
        let text = String::from_utf8(hex::decode(token).map_err(|_| invalid())?).map_err(|_| invalid())?;
        let mut pieces = text.split(SEPARATOR);
        if pieces.next() != Some(VERSION) || pieces.next() != Some(scope) {
            return Err(invalid());
        }
        let out: Vec<String> = pieces.map(str::to_owned).collect();
        if out.len() == parts { Ok(out) } else { Err(invalid()) }
    }
}

/// Share of `grpc.max_message_bytes` the items of one list page may fill
/// (`max_message_bytes / PAGE_BYTES_DIVISOR`); the rest leaves room for the response's
/// other fields and keeps a page well clear of the encoding limit.
pub const PAGE_BYTES_DIVISOR: usize = 2;

/// Bounds a list page in bytes as well as in items: a handler stops adding items once the
/// encoded items would exceed the budget, and answers a `next_page_token` after the last
/// item it kept, so nothing is lost and no page exceeds `grpc.max_message_bytes`. The first
/// item is always kept, so every page makes progress.
#[derive(Debug, Clone)]
pub struct PageBytes {
    budget: usize,
    used: usize,
    items: usize,
}

impl PageBytes {
    /// A page whose items may take `budget` encoded bytes.
    pub fn new(budget: usize) -> Self {
        Self { budget, used: 0, items: 0 }
    }

    /// The budget of the call being served: `grpc.max_message_bytes / PAGE_BYTES_DIVISOR`
    /// of its server (set by the kit's gRPC layer), or of the default `grpc` config when
    /// called outside a served call.
    pub fn current() -> Self {
        let max = crate::grpc::current_max_message_bytes()
            .unwrap_or_else(|| crate::config::GrpcConfig::default().max_message_bytes);
        Self::new(max / PAGE_BYTES_DIVISOR)
    }

    /// The byte budget of the items.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Encoded bytes of the items admitted so far.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Counts `item` as one more element of the page's repeated field and says whether it
    /// fits; an item that does not fit is not counted (the page ends before it). The first
    /// item always fits.
    pub fn admit<M: prost::Message>(&mut self, item: &M) -> bool {
        let len = item.encoded_len();
        // Field key (one byte for field numbers up to 15) and length prefix.
        let size = 1 + prost::encoding::encoded_len_varint(len as u64) + len;
        if self.items > 0 && self.used.saturating_add(size) > self.budget {
            return false;
        }
        self.used = self.used.saturating_add(size);
        self.items += 1;
        true
    }

    /// Keeps the longest prefix of `items` that fits; true when items were left out (the
    /// page then needs a `next_page_token` after its last item).
    pub fn fit<M: prost::Message>(&mut self, items: &mut Vec<M>) -> bool {
        self.fit_with(items, |item| item)
    }

    /// [`PageBytes::fit`] for rows that carry the page's message (`message` picks it).
    pub fn fit_with<T, M: prost::Message>(&mut self, items: &mut Vec<T>, message: impl Fn(&T) -> &M) -> bool {
        let kept = items.iter().take_while(|item| self.admit(message(item))).count();
        let cut = kept < items.len();
        items.truncate(kept);
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(bytes: usize) -> prost_types::Any {
        prost_types::Any { type_url: String::new(), value: vec![b'x'; bytes] }
    }

    /// A list response: the items and a token.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Page {
        #[prost(message, repeated, tag = "1")]
        items: Vec<prost_types::Any>,
        #[prost(string, tag = "2")]
        next_page_token: String,
    }

    #[test]
    fn a_page_stops_before_its_byte_budget_and_keeps_at_least_one_item() {
        // Each item: 100 bytes of text + 2 (field key, length) inside, + 2 outside = 104.
        let mut items: Vec<_> = (0..10).map(|_| item(100)).collect();
        let cut = PageBytes::new(4 * 104 + 50).fit(&mut items);
        assert!(cut, "items were left out");
        assert_eq!(items.len(), 4);
        let mut page = PageBytes::new(4 * 104);
        assert!(!page.fit(&mut items), "exactly the budget fits");
        assert_eq!(page.used(), 4 * 104);
        // An item larger than the whole budget still makes a page of one.
        let mut big = vec![item(10_000), item(1)];
        assert!(PageBytes::new(1000).fit(&mut big));
        assert_eq!(big.len(), 1);
        let mut none: Vec<prost_types::Any> = Vec::new();
        assert!(!PageBytes::new(0).fit(&mut none));
    }

    #[test]
    fn the_budget_is_a_share_of_the_message_limit_and_the_encoded_page_stays_below_it() {
        use prost::Message as _;
        let default = crate::config::GrpcConfig::default().max_message_bytes;
        assert_eq!(PageBytes::current().budget(), default / PAGE_BYTES_DIVISOR);
        // 1000 items of 10 KiB would be ~10 MiB; the page keeps what fits in the budget
        // and the encoded response (items plus a token) stays under the limit.
        let mut items: Vec<_> = (0..1000).map(|_| item(10 * 1024)).collect();
        let mut page = PageBytes::current();
        assert!(page.fit(&mut items));
        let response = Page { items: items.clone(), next_page_token: "t".repeat(1000) };
        // The items take exactly what the page counted; the token adds its 1003 bytes.
        assert_eq!(response.encoded_len(), page.used() + 1003);
        assert!(response.encoded_len() <= default, "{}", response.encoded_len());
        assert!(page.used() <= page.budget());
        assert!(items.len() > 100 && items.len() < 1000, "{}", items.len());
    }

    #[test]
    fn request_ids_are_trimmed_bounded_and_of_the_documented_characters() {
        assert_eq!(request_id("  a-B_9.c:d ").unwrap(), "a-B_9.c:d");
        assert_eq!(request_id("").unwrap(), "");
        assert_eq!(request_id(&"r".repeat(MAX_REQUEST_ID_CHARS)).unwrap().len(), MAX_REQUEST_ID_CHARS);
        for bad in
            ["r".repeat(MAX_REQUEST_ID_CHARS + 1), "a b".into(), "a\u{0}b".into(), "ü".into(), "a/b".into()]
        {
            let err = request_id(&bad).expect_err(&bad);
            assert!(matches!(&err, ApiError::InvalidArgument(v) if v[0].field == "request_id"), "{err:?}");
        }
    }

    proptest::proptest! {
        /// Whatever a client sends, the parser answers without panicking, and
        /// what it accepts is trimmed, bounded and of the documented characters.
        #[test]
        fn any_request_id_is_refused_or_clean(raw in "\\PC{0,200}") {
            if let Ok(id) = request_id(&raw) {
                proptest::prop_assert!(id.chars().count() <= MAX_REQUEST_ID_CHARS);
                proptest::prop_assert!(
                    id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
                );
                proptest::prop_assert_eq!(id.as_str(), raw.trim());
            }
        }

        /// Arbitrary tokens (text, or hex of arbitrary text) never panic and
        /// only decode when they carry this scope and the expected number of
        /// parts.
        #[test]
        fn any_page_token_is_refused_or_well_formed(raw in "\\PC{0,300}", as_hex in proptest::bool::ANY) {
            let token = if as_hex { hex::encode(&raw) } else { raw.clone() };
            if let Ok(parts) = page_token::decode(&token, "scope", 2) {
                proptest::prop_assert_eq!(parts.len(), 2);
                let again = page_token::encode("scope", &[&parts[0], &parts[1]]);
                proptest::prop_assert_eq!(page_token::decode(&again, "scope", 2).unwrap(), parts);
            }
        }

        /// Parts without the separator round-trip within their scope.
        #[test]
        fn page_tokens_round_trip(scope in "[a-z_.,]{1,20}", parts in proptest::collection::vec("[^\u{1f}]{0,40}", 0..5)) {
            let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
            let token = page_token::encode(&scope, &refs);
            proptest::prop_assert_eq!(page_token::decode(&token, &scope, parts.len()).unwrap(), parts.clone());
            let other = format!("{scope}x");
            proptest::prop_assert!(page_token::decode(&token, &other, parts.len()).is_err());
        }
    }

    #[test]
    fn page_tokens_round_trip_within_their_scope_only() {
        let token = page_token::encode("severity.desc", &["4", "-7", "case"]);
        assert_eq!(page_token::decode(&token, "severity.desc", 3).unwrap(), vec!["4", "-7", "case"]);
        assert!(page_token::decode(&token, "opened_at.desc", 3).is_err(), "another order");
        assert!(page_token::decode(&token, "severity.desc", 2).is_err(), "another shape");
        assert!(page_token::decode("zz", "severity.desc", 3).is_err());
        assert!(
            page_token::decode(&hex::encode("p0\u{1f}severity.desc\u{1f}1"), "severity.desc", 1).is_err()
        );
        assert!(page_token::decode(&"ab".repeat(MAX_PAGE_TOKEN_CHARS + 1), "s", 1).is_err());
        let empty = page_token::encode("s", &[]);
        assert_eq!(page_token::decode(&empty, "s", 0).unwrap(), Vec::<String>::new());
    }
}
