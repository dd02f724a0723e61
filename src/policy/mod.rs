//! The indicator policy: normalisation of candidate values and the verdict
//! "send" or "exclude (reason)" for each, plus the parsers of the user's
//! `--internal-domains`, exclusions and `--exclude-rules` files.
//!
//! Pure functions only: no I/O (the file parsers take the file's contents as
//! `&str`; the caller reads the file), no clock, no logging of values.
//!
//! # Normalisation (idempotent: classifying a normalised value gives it back)
//!
//! Every value is trimmed of leading/trailing Unicode whitespace first. A value
//! that still holds whitespace, a control character, a bidi control (U+061C,
//! U+200E/F, U+202A–202E, U+2066–2069) or an invisible character (U+00AD,
//! U+180E, U+200B–200D, U+2060–2064, U+FEFF) is invalid for every type: such a
//! value was tampered with or mangled, and we never guess what it meant.
//!
//! * **ip**: parsed with `std::net` only, so `010.0.0.1`, `0x7f.0.0.1`,
//!   `127.1`, `2130706433`, fullwidth digits and `1.2.3.256` are invalid.
//!   Socket-address forms (`1.2.3.4:8080`, `[2001:db8::1]:443`) and bracketed
//!   addresses are **invalid** too: an IP field must hold an address, and
//!   accepting one port form but not the other would be arbitrary. A zone id
//!   (`fe80::1%eth0`) is stripped and the address judged (link-local → excluded);
//!   a zone on a global address (`2606:4700::1111%eth0`) makes the value invalid.
//!   IPv6 is written in RFC 5952 form (std `Display`). An IPv4-mapped IPv6
//!   address (`::ffff:a.b.c.d`) is judged **and sent as the IPv4 address**
//!   `a.b.c.d`, so the same host is one indicator whichever way it was logged.
//! * **domain**: lower-cased and mapped to A-labels by UTS #46
//!   (`idna::domain_to_ascii`), then one trailing dot removed. The result must
//!   be ASCII letters, digits and hyphens only (so underscores are invalid: not
//!   a host name), labels 1–63 bytes not starting or ending with `-` and without
//!   `--` in positions 3–4 unless they are `xn--` A-labels, at most
//!   253 bytes, and the last label must not be all digits (`1.2.3.256` is not a
//!   domain). Inputs longer than 1024 bytes are invalid without further work.
//! * **url**: only `http`, `https` and `ftp` are sent; other schemes
//!   (`javascript:`, `file:`, `data:`, …) are excluded as `unsupported url
//!   scheme`. A value without a scheme (`evil.example/path?q=1`) is read as
//!   `http://…`. Defanged values (`hxxp://`, `[.]`, `(.)`, `[:]`) are excluded
//!   as `defanged value`: someone deliberately neutralised them, so they are an
//!   analyst's artefact, not an observation. Userinfo and the fragment (which can
//!   carry tokens) are removed. The host is taken from the text as written and
//!   judged by the same IP and domain rules (a WHATWG-only IPv4 form such as
//!   `http://0x7f.0.0.1/` is invalid), and an internal or excluded host makes
//!   the URL `url host internal: <reason>`. URLs over 2048 bytes (before or
//!   after normalisation) are excluded as `url too long`.
//! * **vulnerability**: `CVE-YYYY-N…` (4-digit year, 4–12 digit sequence),
//!   upper-cased.
//! * **hash**: lower-case hex of 32, 40, 64 or 128 digits (MD5, SHA-1,
//!   SHA-256, SHA-512). No structured LogRhythm event field holds a hash, so
//!   extraction never produces one; the rule exists for exclusion entries and
//!   for callers that have hashes from elsewhere.
//!
//! # Verdicts
//!
//! Non-global addresses are never sent. IPv4: `0.0.0.0` (`unspecified ip`),
//! the rest of 0/8 (`reserved ip`), RFC 1918 (`private ip`), 100.64/10 (`cgnat
//! ip`), 127/8 (`loopback ip`), 169.254/16 (`link-local ip`), 192.0.0/24
//! (`reserved ip`), 192.0.2/24, 198.51.100/24, 203.0.113/24 (`documentation
//! ip`), 198.18/15 (`benchmarking ip`), 224/4 (`multicast ip`),
//! 255.255.255.255 (`broadcast ip`), the rest of 240/4 (`reserved ip`). IPv6:
//! `::` (`unspecified ip`), `::1` (`loopback ip`), fc00::/7 (`unique-local
//! ip`), fe80::/10 (`link-local ip`), ff00::/8 (`multicast ip`), 2001:db8::/32
//! and 3fff::/20 (`documentation ip`), 2001::/23 (IETF protocol assignments,
//! incl. Teredo: `reserved ip`), and everything outside the global unicast
//! block 2000::/3 (`reserved ip`, which covers NAT64 64:ff9b::/96, discard
//! 100::/64 and deprecated site-local fec0::/10).
//!
//! Host names: a name without a dot is `single-label host`; built-in internal
//! suffixes ([`INTERNAL_SUFFIXES`]: `local`, `localhost`, `localdomain`, `lan`,
//! `internal`, `intranet`, `home.arpa`, `corp`, `home` — the DESIGN list plus
//! the names ICANN withheld from delegation because they are used privately)
//! give `internal domain suffix .<suffix>`. User lists follow: `user internal
//! domain <suffix>`, `user excluded cidr <net>`, `user excluded domain
//! <suffix>`, `user excluded value`. A suffix matches the name itself and any
//! subdomain, on a label boundary.
//!
//! Values that cannot be normalised are excluded as `invalid <type>` and keep
//! their raw text, made safe for storage by [`safe_raw`].
//!
//! # The organisation's (issue 10)
//!
//! After the fixed rules and the user's lists: `configured own network <net>`
//! (`own_networks`); then, unless the value is in the allow list
//! (`allow_domains`, `allow_networks`: configured wins over learned), what
//! LogRhythm says: an address inside a network record attached to the event or
//! shown before (`logrhythm network <name> (<range>)`), anything on a side whose
//! zone is `Internal` or `DMZ` (`logrhythm zone <zone>`), a host name beside an
//! address of such a record (`… holds the address beside it`), and names under a
//! registered domain learned as the organisation's (`learned organisation domain
//! <domain>`). URLs take their host's verdict. Which sides count and what is
//! learned from them: [`org_side_basis`], `crate::extract::observations` and
//! [`crate::model::LEARN_MIN_WITNESSES`].

use crate::model::{Candidate, Indicator, IndicatorType, NetworkRecord, SideFacts, Verdict};
use ipnetwork::IpNetwork;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::Url;

/// Built-in internal domain suffixes (without the leading dot).
pub const INTERNAL_SUFFIXES: [&str; 9] = [
    "local",
    "localhost",
    "localdomain",
    "lan",
    "internal",
    "intranet",
    "home.arpa",
    "corp",
    "home",
];

/// Longest URL (in bytes) that is sent; longer ones are excluded as `url too long`.
pub const MAX_URL_LEN: usize = 2048;

/// Longest domain input (in bytes) that is looked at; a DNS name is at most 253
/// bytes, and UTS #46 mapping cannot shrink a legitimate name by 4×.
const MAX_DOMAIN_INPUT: usize = 1024;

/// Longest CVE sequence number accepted; real ids have at most 7 digits.
const MAX_CVE_SEQ_DIGITS: usize = 12;

/// How much of an unnormalisable raw value is kept in [`Indicator::value`].
const MAX_SAFE_RAW_CHARS: usize = 256;

/// The user's lists, already validated and normalised. Build it with
/// [`Policy::new`]; [`Policy::default`] is the built-in policy with no user lists.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    internal_domains: HashSet<String>,
    excluded_nets: Vec<IpNetwork>,
    excluded_domains: HashSet<String>,
    excluded_values: HashSet<(IndicatorType, String)>,
    /// `own_networks`: configured, never sent.
    own_networks: Vec<IpNetwork>,
    /// `allow_domains`: sent although LogRhythm's classification or learning says otherwise.
    allow_domains: HashSet<String>,
    /// `allow_networks`: sent although LogRhythm's classification says otherwise.
    allow_networks: Vec<IpNetwork>,
    /// Network records LogRhythm has shown (the ledger's `org_networks`).
    known_networks: Vec<NetworkRecord>,
    /// Registered domains learned as the organisation's (the ledger's `org_domains`).
    learned_domains: HashSet<String>,
}

impl Policy {
    /// A policy from the `--internal-domains` suffixes (as returned by
    /// [`parse_internal_domains`]) and the exclusions file (as returned by
    /// [`parse_exclusions`]).
    pub fn new(internal_domains: Vec<String>, exclusions: Exclusions) -> Policy {
        Policy {
            internal_domains: internal_domains.into_iter().collect(),
            excluded_nets: exclusions.nets,
            excluded_domains: exclusions.domains.into_iter().collect(),
            excluded_values: exclusions.values,
            ..Policy::default()
        }
    }

    /// The configured `own_networks`: never sent, whatever LogRhythm says.
    pub fn with_own_networks(mut self, nets: Vec<IpNetwork>) -> Policy {
        self.own_networks = nets;
        self
    }

    /// The configured allow list: domain suffixes and networks that are sent
    /// although LogRhythm's zones, network records or learning mark them as the
    /// organisation's. It never overrides the built-in rules (non-global
    /// addresses, internal suffixes) or the user's own exclusions.
    pub fn with_allowed(mut self, domains: Vec<String>, nets: Vec<IpNetwork>) -> Policy {
        self.allow_domains = domains.into_iter().collect();
        self.allow_networks = nets;
        self
    }

    /// What the ledger has learned: network records LogRhythm has shown and the
    /// registered domains learned as the organisation's. Replaces earlier knowledge.
    pub fn with_knowledge(mut self, networks: Vec<NetworkRecord>, domains: Vec<String>) -> Policy {
        self.known_networks = networks;
        self.learned_domains = domains.into_iter().collect();
        self
    }

    /// The configured internal domain suffixes, sorted.
    pub fn internal_domains(&self) -> Vec<String> {
        let mut v: Vec<String> = self.internal_domains.iter().cloned().collect();
        v.sort();
        v
    }

    /// The allowed domain suffixes, sorted.
    pub fn allowed_domains(&self) -> Vec<String> {
        let mut v: Vec<String> = self.allow_domains.iter().cloned().collect();
        v.sort();
        v
    }

    /// The configured `own_networks`.
    pub fn own_networks(&self) -> &[IpNetwork] {
        &self.own_networks
    }

    /// The allowed networks.
    pub fn allowed_networks(&self) -> &[IpNetwork] {
        &self.allow_networks
    }

    /// Whether `name` (normalised) is under a configured internal domain.
    pub fn is_configured_internal(&self, name: &str) -> bool {
        matching_suffix(name, &self.internal_domains).is_some()
    }

    /// Whether `name` (normalised) is under an allowed domain.
    pub fn is_allowed_domain(&self, name: &str) -> bool {
        matching_suffix(name, &self.allow_domains).is_some()
    }

    /// Whether `name` (normalised) is under a learned domain.
    pub fn is_learned(&self, name: &str) -> bool {
        matching_suffix(name, &self.learned_domains).is_some()
    }

    /// The known or attached network record holding `ip`, if any.
    fn org_network<'a>(&'a self, ip: IpAddr, facts: &'a SideFacts) -> Option<&'a NetworkRecord> {
        facts
            .network
            .iter()
            .chain(&facts.alarm_networks)
            .chain(&self.known_networks)
            .find(|n| n.contains(ip))
    }

    fn allowed_ip(&self, ip: IpAddr) -> bool {
        self.allow_networks.iter().any(|n| n.contains(ip))
    }
}

/// Why LogRhythm says an event side is the organisation's, or `None`: its zone
/// is `Internal` or `DMZ`, or the side's address lies in a network record
/// (attached to the side, or shown before and kept in the ledger). A side whose
/// zone is `External` is never the organisation's by a network record alone.
pub fn org_side_basis(facts: &SideFacts, p: &Policy) -> Option<String> {
    if let Some(z) = facts.zone {
        return Some(format!("logrhythm zone {}", z.as_str()));
    }
    if facts.external {
        return None;
    }
    let ip = facts.address?;
    if p.allowed_ip(ip) {
        return None;
    }
    p.org_network(ip, facts).map(|n| {
        format!(
            "logrhythm network {} holds the address beside it",
            n.label()
        )
    })
}

/// The registered domain of a normalised host name by the Public Suffix List
/// (`ws-1.hq.example.co.uk` → `example.co.uk`), or `None` when the name is a
/// public suffix itself or has no registrable part.
pub fn registered_domain(name: &str) -> Option<String> {
    let d = psl::domain_str(name)?;
    // The list's default rule makes any unknown last label a suffix; a single
    // label is never a registered domain.
    d.contains('.').then(|| d.to_string())
}

/// Whether a normalised host name is excluded by the built-in rules alone
/// (single label, internal suffix): such names teach nothing about a domain.
pub fn is_builtin_internal(name: &str) -> bool {
    matches!(
        judge_domain(name, &Policy::default(), &SideFacts::default()),
        Verdict::Exclude(_)
    )
}

/// Judges a value already normalised (as the ledger stores it) against `p`, as
/// [`classify`] would with no event context. Used to judge pending detections
/// again at submit time, once more is known.
pub fn judge_stored(kind: IndicatorType, value: &str, p: &Policy) -> Verdict {
    judge(kind, value, p, &SideFacts::default()).1
}

/// Distinct host names under one registered domain about to be sent that make
/// it worth a look ([`unjudged_domains`]).
pub const UNJUDGED_MIN_HOSTS: usize = 3;

/// A registered domain whose host names are about to be sent although nobody
/// judged it (not learned, configured internal, or allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unjudged {
    pub domain: String,
    /// Distinct host names under it about to be sent.
    pub hosts: usize,
    /// One of them.
    pub example: String,
}

/// The registered domains of `hosts` (names about to be sent) that look like
/// an organisation's and that nobody judged: [`UNJUDGED_MIN_HOSTS`] or more
/// distinct names, or any name of a domain already seen on the organisation's
/// sides (`seen`) without reaching the learning threshold. Sorted by domain.
pub fn unjudged_domains(hosts: &[String], p: &Policy, seen: &[String]) -> Vec<Unjudged> {
    let mut by_domain: std::collections::BTreeMap<String, std::collections::BTreeSet<&str>> =
        Default::default();
    for h in hosts {
        if p.is_allowed_domain(h) || p.is_configured_internal(h) || p.is_learned(h) {
            continue;
        }
        if let Some(d) = registered_domain(h) {
            by_domain.entry(d).or_default().insert(h);
        }
    }
    by_domain
        .into_iter()
        .filter(|(d, names)| names.len() >= UNJUDGED_MIN_HOSTS || seen.contains(d))
        .map(|(domain, names)| Unjudged {
            hosts: names.len(),
            example: names
                .iter()
                .next()
                .map(|s| s.to_string())
                .unwrap_or_default(),
            domain,
        })
        .collect()
}

/// The host of a stored (normalised) URL, for grouping by registered domain.
pub fn url_host(url: &str) -> Option<String> {
    Url::parse(url).ok()?.host_str().map(str::to_string)
}

/// The parsed exclusions file: CIDR networks, domain suffixes and exact
/// (type, normalised value) pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exclusions {
    /// Networks given with a prefix length (`10.9.0.0/16`).
    pub nets: Vec<IpNetwork>,
    /// Normalised domain suffixes; each matches the name and its subdomains.
    pub domains: Vec<String>,
    /// Exact values: single IPs, URLs, CVE ids and hashes, normalised.
    pub values: HashSet<(IndicatorType, String)>,
}

/// A bad line in a user list file.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {kind}: {text:?}")]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// The offending line (trimmed; cut to 256 characters).
    pub text: String,
    /// What is wrong with it.
    #[source]
    pub kind: LineErrorKind,
}

/// What is wrong with a line of a user list file.
#[derive(Debug, thiserror::Error)]
pub enum LineErrorKind {
    /// Not a valid domain suffix.
    #[error("not a valid domain suffix")]
    InvalidDomain,
    /// A `/` entry whose address part is not an IP address.
    #[error("not a valid network address")]
    InvalidNetworkAddress(#[source] std::net::AddrParseError),
    /// A prefix length that is not a decimal number in range.
    #[error("prefix length must be 0-{max}")]
    InvalidPrefix {
        /// 32 for IPv4, 128 for IPv6.
        max: u8,
    },
    /// ipnetwork refused the network.
    #[error("not a valid network")]
    InvalidNetwork(#[source] ipnetwork::IpNetworkError),
    /// Bits set after the prefix, e.g. `10.0.0.1/8`: most likely a typo.
    #[error("host bits set (did you mean {network}/{prefix}?)")]
    HostBitsSet {
        /// The network address the user probably meant.
        network: IpAddr,
        /// The prefix length given.
        prefix: u8,
    },
    /// An IP address that is not in canonical dotted/colon form.
    #[error("not a valid ip address")]
    InvalidIp,
    /// A URL that does not normalise (see the module docs).
    #[error("not a valid url ({reason})")]
    InvalidUrl {
        /// Why it was refused.
        reason: String,
    },
}

// ---------------------------------------------------------------------------
// Classification
// ---------------------------------------------------------------------------

/// Normalise a candidate and decide whether it is sent, with no event context.
pub fn classify(c: &Candidate, p: &Policy) -> Indicator {
    classify_on(c, p, &SideFacts::default())
}

/// Normalise a candidate found on an event side with these facts and decide
/// whether it is sent (`url` and `cve` candidates take empty facts).
pub fn classify_on(c: &Candidate, p: &Policy, facts: &SideFacts) -> Indicator {
    let (value, verdict) = judge(c.kind, &c.raw, p, facts);
    Indicator {
        kind: c.kind,
        value,
        field: c.field,
        verdict,
        source: Default::default(),
    }
}

/// Normalise `raw` as `kind` and judge it: (value, verdict).
fn judge(kind: IndicatorType, raw: &str, p: &Policy, facts: &SideFacts) -> (String, Verdict) {
    let s = raw.trim();
    if s.chars().any(is_forbidden_char) {
        return invalid(kind, raw);
    }
    match kind {
        IndicatorType::Ip => match normalize_ip(s) {
            Some(ip) => (ip.to_string(), judge_ip(ip, p, facts)),
            None => invalid(kind, raw),
        },
        IndicatorType::Domain => match normalize_domain(s) {
            Some(d) => {
                let verdict = judge_domain(&d, p, facts);
                (d, verdict)
            }
            None => invalid(kind, raw),
        },
        IndicatorType::Url => judge_url(s, raw, p),
        IndicatorType::Vulnerability => match normalize_cve(s) {
            Some(v) => {
                let verdict = judge_value(kind, &v, p);
                (v, verdict)
            }
            None => invalid(kind, raw),
        },
        IndicatorType::Hash => match normalize_hash(s) {
            Some(v) => {
                let verdict = judge_value(kind, &v, p);
                (v, verdict)
            }
            None => invalid(kind, raw),
        },
    }
}

fn invalid(kind: IndicatorType, raw: &str) -> (String, Verdict) {
    (
        safe_raw(raw),
        Verdict::Exclude(format!("invalid {}", kind.as_str())),
    )
}

fn exclude(reason: &str) -> Verdict {
    Verdict::Exclude(reason.to_string())
}

fn judge_value(kind: IndicatorType, v: &str, p: &Policy) -> Verdict {
    if p.excluded_values.contains(&(kind, v.to_string())) {
        exclude("user excluded value")
    } else {
        Verdict::Send
    }
}

/// Whitespace, control, bidi and invisible characters: never part of an indicator.
pub fn is_forbidden_char(c: char) -> bool {
    c.is_whitespace() || crate::text::is_unsafe(c)
}

/// The raw text of a value that could not be normalised, made safe to store and
/// show: forbidden characters escaped (`\u{202e}`), cut to 256 characters with
/// a marker saying how long the original was in bytes (`…[1048576B]`, no
/// whitespace: the result never holds a forbidden character).
pub fn safe_raw(raw: &str) -> String {
    let mut out = String::new();
    for (count, c) in raw.chars().enumerate() {
        if count == MAX_SAFE_RAW_CHARS {
            out.push_str(&format!("…[{}B]", raw.len()));
            return out;
        }
        if is_forbidden_char(c) || c == '\\' {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// IP
// ---------------------------------------------------------------------------

/// Parse an IP literal strictly (std only); strip an IPv6 zone id; turn an
/// IPv4-mapped IPv6 address into IPv4. `None` if it is not an IP literal.
pub fn normalize_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    let addr = match s.split_once('%') {
        Some((addr, zone)) => {
            let zone_ok = !zone.is_empty()
                && zone
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !zone_ok {
                return None;
            }
            let v6 = canonical_ip(IpAddr::V6(addr.parse::<Ipv6Addr>().ok()?));
            // Zones exist only for non-global scopes (RFC 4007); a zone on a
            // global address means the value is not what it claims to be.
            non_global_reason(v6)?;
            v6
        }
        None => s.parse::<IpAddr>().ok()?,
    };
    Some(canonical_ip(addr))
}

fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Why an address is not global, or `None` if it is globally routable.
pub fn non_global_reason(ip: IpAddr) -> Option<&'static str> {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => non_global_v4(v4),
        IpAddr::V6(v6) => non_global_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn non_global_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const RANGES: [([u8; 4], u32, &str); 16] = [
        ([0, 0, 0, 0], 32, "unspecified ip"),
        ([255, 255, 255, 255], 32, "broadcast ip"),
        ([0, 0, 0, 0], 8, "reserved ip"),
        ([10, 0, 0, 0], 8, "private ip"),
        ([172, 16, 0, 0], 12, "private ip"),
        ([192, 168, 0, 0], 16, "private ip"),
        ([100, 64, 0, 0], 10, "cgnat ip"),
        ([127, 0, 0, 0], 8, "loopback ip"),
        ([169, 254, 0, 0], 16, "link-local ip"),
        ([192, 0, 0, 0], 24, "reserved ip"),
        ([192, 0, 2, 0], 24, "documentation ip"),
        ([198, 51, 100, 0], 24, "documentation ip"),
        ([203, 0, 113, 0], 24, "documentation ip"),
        ([198, 18, 0, 0], 15, "benchmarking ip"),
        ([224, 0, 0, 0], 4, "multicast ip"),
        ([240, 0, 0, 0], 4, "reserved ip"),
    ];
    RANGES
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, reason)| *reason)
}

fn in_v6(ip: Ipv6Addr, net: u128, prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    (u128::from(ip) & mask) == (net & mask)
}

fn non_global_v6(ip: Ipv6Addr) -> Option<&'static str> {
    const RANGES: [(u128, u32, &str); 8] = [
        (0, 128, "unspecified ip"),
        (1, 128, "loopback ip"),
        (0xfc00 << 112, 7, "unique-local ip"),
        (0xfe80 << 112, 10, "link-local ip"),
        (0xff00 << 112, 8, "multicast ip"),
        (0x2001_0db8 << 96, 32, "documentation ip"),
        (0x3fff << 112, 20, "documentation ip"),
        (0x2001 << 112, 23, "reserved ip"),
    ];
    if let Some((_, _, reason)) = RANGES
        .iter()
        .find(|(net, prefix, _)| in_v6(ip, *net, *prefix))
    {
        return Some(reason);
    }
    if !in_v6(ip, 0x2000 << 112, 3) {
        return Some("reserved ip");
    }
    None
}

fn judge_ip(ip: IpAddr, p: &Policy, facts: &SideFacts) -> Verdict {
    if let Some(reason) = non_global_reason(ip) {
        return exclude(reason);
    }
    if let Some(net) = p.excluded_nets.iter().find(|n| n.contains(ip)) {
        return Verdict::Exclude(format!("user excluded cidr {net}"));
    }
    if let Some(net) = p.own_networks.iter().find(|n| n.contains(ip)) {
        return Verdict::Exclude(format!("configured own network {net}"));
    }
    let verdict = judge_value(IndicatorType::Ip, &ip.to_string(), p);
    if verdict != Verdict::Send || p.allowed_ip(ip) {
        return verdict;
    }
    if let Some(n) = p.org_network(ip, facts) {
        return Verdict::Exclude(format!("logrhythm network {}", n.label()));
    }
    match org_side_basis(facts, p) {
        Some(basis) => Verdict::Exclude(basis),
        None => Verdict::Send,
    }
}

// ---------------------------------------------------------------------------
// Domain
// ---------------------------------------------------------------------------

/// Normalise a host name to a lower-case A-label name without trailing dot;
/// `None` if it is not a valid DNS host name (see the module docs).
pub fn normalize_domain(s: &str) -> Option<String> {
    let s = s.trim();
    if s.is_empty() || s.len() > MAX_DOMAIN_INPUT || s.chars().any(is_forbidden_char) {
        return None;
    }
    let ascii = idna::domain_to_ascii(s).ok()?;
    let name = ascii.strip_suffix('.').unwrap_or(&ascii);
    if name.is_empty() || name.len() > 253 {
        return None;
    }
    let mut last = "";
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            // `ab--…` is reserved for IDNA (RFC 5891 §4.2.3.1); only `xn--` is defined.
            && (label.get(2..4) != Some("--") || label.starts_with("xn--"))
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return None;
        }
        last = label;
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(name.to_string())
}

/// The suffix in `set` that `name` equals or is a subdomain of, if any.
fn matching_suffix<'a>(name: &'a str, set: &HashSet<String>) -> Option<&'a str> {
    if set.is_empty() {
        return None;
    }
    let mut rest = name;
    loop {
        if set.contains(rest) {
            return Some(rest);
        }
        rest = rest.split_once('.')?.1;
    }
}

fn judge_domain(d: &str, p: &Policy, facts: &SideFacts) -> Verdict {
    if !d.contains('.') {
        return exclude("single-label host");
    }
    if let Some(suffix) = INTERNAL_SUFFIXES
        .iter()
        .find(|sfx| d == **sfx || d.strip_suffix(**sfx).is_some_and(|r| r.ends_with('.')))
    {
        return Verdict::Exclude(format!("internal domain suffix .{suffix}"));
    }
    if let Some(sfx) = matching_suffix(d, &p.internal_domains) {
        return Verdict::Exclude(format!("user internal domain {sfx}"));
    }
    if let Some(sfx) = matching_suffix(d, &p.excluded_domains) {
        return Verdict::Exclude(format!("user excluded domain {sfx}"));
    }
    let verdict = judge_value(IndicatorType::Domain, d, p);
    if verdict != Verdict::Send || p.is_allowed_domain(d) {
        return verdict;
    }
    if let Some(basis) = org_side_basis(facts, p) {
        return Verdict::Exclude(basis);
    }
    if let Some(sfx) = matching_suffix(d, &p.learned_domains) {
        return Verdict::Exclude(format!("learned organisation domain {sfx}"));
    }
    Verdict::Send
}

// ---------------------------------------------------------------------------
// URL
// ---------------------------------------------------------------------------

const SCHEMES: [&str; 3] = ["http", "https", "ftp"];

fn is_defanged(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    lower.starts_with("hxxp")
        || lower.starts_with("fxp")
        || ["[.]", "(.)", "{.}", "[dot]", "(dot)", "[:]", "[://]"]
            .iter()
            .any(|m| lower.contains(m))
}

/// The scheme of `s` if it starts with `scheme:` where the scheme has no dot
/// (so `evil.example:8080/x` has none).
fn scheme_of(s: &str) -> Option<&str> {
    let (scheme, _) = s.split_once(':')?;
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-'));
    (first_ok && rest_ok).then_some(scheme)
}

/// The host as written in `scheme://[userinfo@]host[:port]/…`.
fn raw_host(with_scheme: &str) -> Option<&str> {
    let (_, rest) = with_scheme.split_once("://")?;
    let end = rest.find(['/', '\\', '?', '#']).unwrap_or(rest.len());
    let authority = rest.get(..end)?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = host_port.strip_prefix('[') {
        let close = v6.find(']')?;
        return host_port.get(..close + 2);
    }
    Some(host_port.split_once(':').map_or(host_port, |(h, _)| h))
}

/// The verdict on a URL's host, judged by the IP and domain rules.
enum HostJudgement {
    Invalid,
    Ok {
        domain: Option<String>,
        verdict: Verdict,
    },
}

fn judge_url_host(url: &Url, written: &str, p: &Policy) -> HostJudgement {
    match url.host() {
        Some(url::Host::Ipv4(_)) => match written.parse::<Ipv4Addr>() {
            Ok(v4) => HostJudgement::Ok {
                domain: None,
                verdict: judge_ip(IpAddr::V4(v4), p, &SideFacts::default()),
            },
            Err(_) => HostJudgement::Invalid,
        },
        Some(url::Host::Ipv6(v6)) => HostJudgement::Ok {
            domain: None,
            verdict: judge_ip(canonical_ip(IpAddr::V6(v6)), p, &SideFacts::default()),
        },
        Some(url::Host::Domain(_)) => match normalize_domain(written) {
            Some(d) => {
                let verdict = judge_domain(&d, p, &SideFacts::default());
                HostJudgement::Ok {
                    domain: Some(d),
                    verdict,
                }
            }
            None => HostJudgement::Invalid,
        },
        None => HostJudgement::Invalid,
    }
}

fn judge_url(s: &str, raw: &str, p: &Policy) -> (String, Verdict) {
    if s.len() > MAX_URL_LEN {
        return (safe_raw(raw), exclude("url too long"));
    }
    if is_defanged(s) {
        return (safe_raw(raw), exclude("defanged value"));
    }
    let with_scheme = match scheme_of(s) {
        Some(_) => s.to_string(),
        None => format!("http://{s}"),
    };
    let mut url = match Url::parse(&with_scheme) {
        Ok(u) => u,
        Err(_) => return invalid(IndicatorType::Url, raw),
    };
    if !SCHEMES.contains(&url.scheme()) {
        return (safe_raw(raw), exclude("unsupported url scheme"));
    }
    let Some(written) = raw_host(&with_scheme) else {
        return invalid(IndicatorType::Url, raw);
    };
    let host_verdict = match judge_url_host(&url, written, p) {
        HostJudgement::Invalid => return invalid(IndicatorType::Url, raw),
        HostJudgement::Ok { domain, verdict } => {
            if let Some(d) = domain {
                if url.set_host(Some(&d)).is_err() {
                    return invalid(IndicatorType::Url, raw);
                }
            }
            verdict
        }
    };
    // Userinfo can hold credentials; the fragment can hold tokens.
    if url.set_username("").is_err() || url.set_password(None).is_err() {
        return invalid(IndicatorType::Url, raw);
    }
    url.set_fragment(None);
    let value = String::from(url);
    if value.len() > MAX_URL_LEN {
        return (safe_raw(raw), exclude("url too long"));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return invalid(IndicatorType::Url, raw);
    }
    let verdict = match host_verdict {
        Verdict::Exclude(reason) => Verdict::Exclude(format!("url host internal: {reason}")),
        Verdict::Send => judge_value(IndicatorType::Url, &value, p),
    };
    (value, verdict)
}

/// Normalise a URL as [`classify`] would, for exclusion entries. An internal
/// host is fine here; anything else that stops a URL being sent (scheme, bad
/// host, length, defanging, forbidden characters) is an error with its reason.
fn normalize_url(s: &str) -> Result<String, String> {
    if s.chars().any(is_forbidden_char) {
        return Err("invalid url".to_string());
    }
    let (value, verdict) = judge_url(s, s, &Policy::default());
    match verdict {
        Verdict::Send => Ok(value),
        Verdict::Exclude(reason) if reason.starts_with("url host internal") => Ok(value),
        Verdict::Exclude(reason) => Err(reason),
    }
}

// ---------------------------------------------------------------------------
// CVE and hash
// ---------------------------------------------------------------------------

/// If `b` starts with a CVE id (`CVE-\d{4}-\d{4,12}`, case-insensitive), its length.
pub(crate) fn cve_len_at(b: &[u8]) -> Option<usize> {
    let prefix = b.get(..4)?;
    if !prefix.eq_ignore_ascii_case(b"cve-") {
        return None;
    }
    let year = b.get(4..8)?;
    if !year.iter().all(u8::is_ascii_digit) || b.get(8) != Some(&b'-') {
        return None;
    }
    let digits = b
        .get(9..)?
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    (4..=MAX_CVE_SEQ_DIGITS)
        .contains(&digits)
        .then_some(9 + digits)
}

/// `CVE-YYYY-NNNN…` upper-cased, or `None` if `s` is not exactly one CVE id.
pub fn normalize_cve(s: &str) -> Option<String> {
    let s = s.trim();
    (cve_len_at(s.as_bytes())? == s.len()).then(|| s.to_ascii_uppercase())
}

/// Lower-case hex of an MD5, SHA-1, SHA-256 or SHA-512 digest, or `None`.
pub fn normalize_hash(s: &str) -> Option<String> {
    let s = s.trim();
    (matches!(s.len(), 32 | 40 | 64 | 128) && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| s.to_ascii_lowercase())
}

// ---------------------------------------------------------------------------
// User list files
// ---------------------------------------------------------------------------

/// The meaningful lines of a list file: (1-based number, trimmed text), without
/// a UTF-8 BOM, blank lines and `#` comment lines; CRLF or LF endings.
fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    text.split('\n')
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
}

fn line_error(line: usize, text: &str, kind: LineErrorKind) -> LineError {
    LineError {
        line,
        text: text.chars().take(MAX_SAFE_RAW_CHARS).collect(),
        kind,
    }
}

/// A domain suffix as written in a list file: `example.corp`, `.example.corp`
/// or `*.example.corp`; single labels (`corp`) are allowed.
fn normalize_suffix(s: &str) -> Option<String> {
    let s = s
        .strip_prefix("*.")
        .or_else(|| s.strip_prefix('.'))
        .unwrap_or(s);
    normalize_domain(s)
}

/// Parse an `--internal-domains` file: one domain suffix a line (`example.corp`,
/// `.example.corp`, `*.example.corp` or a single label such as `corp`).
/// Returns the normalised suffixes, de-duplicated, in file order.
pub fn parse_internal_domains(text: &str) -> Result<Vec<String>, LineError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (n, line) in content_lines(text) {
        let d = normalize_suffix(line)
            .ok_or_else(|| line_error(n, line, LineErrorKind::InvalidDomain))?;
        if seen.insert(d.clone()) {
            out.push(d);
        }
    }
    Ok(out)
}

fn parse_cidr(n: usize, line: &str, addr: &str, prefix: &str) -> Result<IpNetwork, LineError> {
    let ip = addr
        .parse::<IpAddr>()
        .map_err(|e| line_error(n, line, LineErrorKind::InvalidNetworkAddress(e)))?;
    let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
    let prefix =
        if !prefix.is_empty() && prefix.len() <= 3 && prefix.bytes().all(|b| b.is_ascii_digit()) {
            prefix.parse::<u8>().ok().filter(|p| *p <= max)
        } else {
            None
        }
        .ok_or_else(|| line_error(n, line, LineErrorKind::InvalidPrefix { max }))?;
    let net = IpNetwork::new(ip, prefix)
        .map_err(|e| line_error(n, line, LineErrorKind::InvalidNetwork(e)))?;
    if net.network() != ip {
        return Err(line_error(
            n,
            line,
            LineErrorKind::HostBitsSet {
                network: net.network(),
                prefix,
            },
        ));
    }
    Ok(net)
}

/// Parse an exclusions file. One entry a line, recognised in this order:
/// a URL (contains `://`), a CIDR network (contains `/`; host bits must be
/// clear), an IP address (exact value; IPv4-mapped IPv6 becomes IPv4), a CVE
/// id, a hash (32/40/64/128 hex digits), else a domain suffix (which also
/// excludes URLs on that host). Blank lines, `#` comment lines, a UTF-8 BOM,
/// CRLF and duplicates are accepted.
pub fn parse_exclusions(text: &str) -> Result<Exclusions, LineError> {
    let mut ex = Exclusions::default();
    let mut nets = HashSet::new();
    let mut domains = HashSet::new();
    for (n, line) in content_lines(text) {
        if line.contains("://") {
            let v = normalize_url(line)
                .map_err(|reason| line_error(n, line, LineErrorKind::InvalidUrl { reason }))?;
            ex.values.insert((IndicatorType::Url, v));
        } else if let Some((addr, prefix)) = line.split_once('/') {
            let net = parse_cidr(n, line, addr, prefix)?;
            if nets.insert(net) {
                ex.nets.push(net);
            }
        } else if line.contains(':') || line.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            let ip =
                normalize_ip(line).ok_or_else(|| line_error(n, line, LineErrorKind::InvalidIp))?;
            ex.values.insert((IndicatorType::Ip, ip.to_string()));
        } else if let Some(cve) = normalize_cve(line) {
            ex.values.insert((IndicatorType::Vulnerability, cve));
        } else if let Some(hash) = normalize_hash(line) {
            ex.values.insert((IndicatorType::Hash, hash));
        } else {
            let d = normalize_suffix(line)
                .ok_or_else(|| line_error(n, line, LineErrorKind::InvalidDomain))?;
            if domains.insert(d.clone()) {
                ex.domains.push(d);
            }
        }
    }
    Ok(ex)
}

/// Parse an `--exclude-rules` file: one alarm rule name a line, trimmed; blank
/// and `#` lines ignored; duplicates dropped (first kept). Never fails: any
/// text is a possible rule name.
pub fn parse_rule_list(text: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    content_lines(text)
        .filter(|(_, line)| seen.insert(*line))
        .map(|(_, line)| line.to_string())
        .collect()
}

#[cfg(test)]
mod tests;
