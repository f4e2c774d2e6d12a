//! The cluster's certificates: one CA, and who each certificate names.
//!
//! A Kubernetes cluster trusts one certificate authority. kube-apiserver
//! presents a serving certificate the CA signed, and every client proves
//! who it is with a client certificate the CA signed: the certificate's
//! Common Name is the user name and its Organizations are the groups
//! (`CN=kubernetes-admin, O=system:masters` for the admin kubeconfig,
//! `CN=system:node:<name>, O=system:nodes` for a kubelet). Nothing else is
//! needed to authenticate a request: the TLS handshake has checked the
//! signature, so the server only reads the names.
//!
//! New nodes get their certificate the way kubelets do (TLS bootstrap):
//! they make a key and a certificate signing request (CSR) naming
//! themselves, post it as a `CertificateSigningRequest` object with a
//! short-lived bootstrap token, and wait until a controller has approved
//! it and the signer has put the certificate in its status. This module
//! holds the pieces of that flow that are pure certificate work:
//! [`Ca`] (make, load, issue, sign a CSR), [`make_csr`], [`subject_of`],
//! [`spki_hash`], and the join token ([`JoinToken`]) that carries both a
//! bootstrap token and the CA's hash, so a joining node can check that the
//! CA it downloads is the one its administrator meant.
//!
//! Where tinykube simplifies: keys are ECDSA P-256 (kubeadm makes RSA 2048
//! by default; both are accepted everywhere); certificates are valid for a
//! year (the CA for ten), with no automatic rotation yet.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};

/// The signer of kubelets' client certificates, as upstream names it.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";

/// A year: how long issued certificates are valid.
pub const CERT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Ten years: how long the CA is valid, as kubeadm's.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Errors of certificate work.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Making, parsing or signing a certificate or a CSR failed.
    #[error("{0}")]
    Certificate(String),
    /// Reading or writing a certificate or key file failed.
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// A join token does not have the expected form.
    #[error("{0}")]
    Token(String),
}

fn cert_err(what: &str) -> impl Fn(rcgen::Error) -> PkiError + '_ {
    move |e| PkiError::Certificate(format!("{what}: {e}"))
}

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct Identity {
    pub cert_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for Identity {
    // Never print a private key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

impl Identity {
    /// Reads `<stem>.crt` and `<stem>.key` in `dir`.
    pub fn read(dir: &Path, stem: &str) -> Result<Identity, PkiError> {
        Ok(Identity { cert_pem: read(&dir.join(format!("{stem}.crt")))?, key_pem: read(&dir.join(format!("{stem}.key")))? })
    }

    /// Writes `<stem>.crt` and `<stem>.key` (mode 0600) in `dir`.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<(), PkiError> {
        write(&dir.join(format!("{stem}.crt")), &self.cert_pem, 0o644)?;
        write(&dir.join(format!("{stem}.key")), &self.key_pem, 0o600)
    }

    /// Who the certificate names.
    pub fn subject(&self) -> Result<Subject, PkiError> {
        subject_of(&pem_to_der(&self.cert_pem)?)
    }
}

/// What a certificate is for: its extended key usages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// TLS client authentication: a user, a component, a node.
    Client,
    /// A TLS server: the api-server, an agent's port.
    Server,
}

impl Usage {
    fn purpose(self) -> ExtendedKeyUsagePurpose {
        match self {
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
        }
    }
}

/// What to put in a certificate the CA issues.
#[derive(Debug, Clone)]
pub struct CertSpec {
    /// The Common Name: the user name of a client certificate.
    pub common_name: String,
    /// The Organizations: the groups of a client certificate.
    pub organizations: Vec<String>,
    pub usage: Usage,
    /// Subject alternative names of a serving certificate.
    pub dns_names: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl CertSpec {
    /// A client certificate for `user` in `groups`.
    pub fn client(user: &str, groups: &[&str]) -> Self {
        CertSpec {
            common_name: user.into(),
            organizations: groups.iter().map(|g| g.to_string()).collect(),
            usage: Usage::Client,
            dns_names: Vec::new(),
            ips: Vec::new(),
        }
    }

    /// A serving certificate for these names and addresses.
    pub fn server(common_name: &str, dns_names: Vec<String>, ips: Vec<IpAddr>) -> Self {
        CertSpec { common_name: common_name.into(), organizations: Vec::new(), usage: Usage::Server, dns_names, ips }
    }
}

/// The cluster's certificate authority.
pub struct Ca {
    /// The CA certificate as an issuer (rcgen re-creates it from the PEM
    /// with the same name and key, which is all signing needs).
    issuer: rcgen::Certificate,
    key: KeyPair,
    cert_pem: String,
    key_pem: String,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

impl Ca {
    /// A new CA named `common_name` (kubeadm's is `kubernetes`).
    pub fn generate(common_name: &str) -> Result<Ca, PkiError> {
        let key = KeyPair::generate().map_err(cert_err("making the CA key"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name, &[]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        set_validity(&mut params, CA_VALIDITY);
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key).map_err(cert_err("making the CA certificate"))?;
        let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
        Ca::from_pem(&cert_pem, &key_pem).map(|ca| Ca { cert_pem, key_pem, ..ca })
    }

    /// A CA from its certificate and key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, PkiError> {
        let key = KeyPair::from_pem(key_pem).map_err(cert_err("reading the CA key"))?;
        let params = CertificateParams::from_ca_cert_pem(cert_pem).map_err(cert_err("reading the CA certificate"))?;
        let issuer = params.self_signed(&key).map_err(cert_err("loading the CA"))?;
        Ok(Ca { issuer, key, cert_pem: cert_pem.to_string(), key_pem: key_pem.to_string() })
    }

    /// The CA in `dir` (`ca.crt`, `ca.key`), made there on first use.
    pub fn load_or_create(dir: &Path, common_name: &str) -> Result<Ca, PkiError> {
        let (crt, key) = (dir.join("ca.crt"), dir.join("ca.key"));
        if crt.exists() || key.exists() {
            return Ca::from_pem(&read(&crt)?, &read(&key)?).map_err(|e| {
                PkiError::Certificate(format!("the CA in {}: {e} (remove ca.crt and ca.key to make a new one)", dir.display()))
            });
        }
        let ca = Ca::generate(common_name)?;
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Io { path: dir.display().to_string(), source })?;
        write(&key, &ca.key_pem, 0o600)?;
        write(&crt, &ca.cert_pem, 0o644)?;
        Ok(ca)
    }

    /// The CA certificate, PEM: what clients trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's hash as kubeadm's `--discovery-token-ca-cert-hash` writes
    /// it: `sha256:` and the hex SHA-256 of its SubjectPublicKeyInfo.
    pub fn hash(&self) -> String {
        spki_hash(self.issuer.der()).expect("the CA's own certificate parses")
    }

    /// Issues a new key and a certificate for it.
    pub fn issue(&self, spec: &CertSpec) -> Result<Identity, PkiError> {
        let key = KeyPair::generate().map_err(cert_err("making a key"))?;
        let mut params = subject(spec);
        self.finish(&mut params, spec.usage);
        let cert = params.signed_by(&key, &self.issuer, &self.key).map_err(cert_err("signing a certificate"))?;
        Ok(Identity { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// Signs a PEM CSR as a client certificate, keeping the subject it
    /// asks for (the caller has checked it) and nothing else it asks for:
    /// the usages and the validity are the signer's, as upstream's signer
    /// decides them.
    pub fn sign_csr(&self, csr_pem: &str, usage: Usage) -> Result<String, PkiError> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(cert_err("reading the CSR"))?;
        csr.params.subject_alt_names.clear();
        self.finish(&mut csr.params, usage);
        let cert = csr.signed_by(&self.issuer, &self.key).map_err(cert_err("signing the CSR"))?;
        Ok(cert.pem())
    }

    fn finish(&self, params: &mut CertificateParams, usage: Usage) {
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![usage.purpose()];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        set_validity(params, CERT_VALIDITY);
    }
}

/// The subject and the alternative names a certificate for `spec` names.
fn subject(spec: &CertSpec) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(&spec.common_name, &spec.organizations);
    params.subject_alt_names = spec
        .dns_names
        .iter()
        .filter_map(|d| d.clone().try_into().ok().map(SanType::DnsName))
        .chain(spec.ips.iter().map(|ip| SanType::IpAddress(*ip)))
        .collect();
    params
}

/// A new key and a certificate for it that it signs itself: an agent's
/// serving certificate, which the api-server does not check (upstream's
/// kube-apiserver does not either, unless given
/// `--kubelet-certificate-authority`).
pub fn self_signed(spec: &CertSpec) -> Result<Identity, PkiError> {
    let key = KeyPair::generate().map_err(cert_err("making a key"))?;
    let mut params = subject(spec);
    params.extended_key_usages = vec![spec.usage.purpose()];
    params.serial_number = Some(random_serial());
    set_validity(&mut params, CERT_VALIDITY);
    let cert = params.self_signed(&key).map_err(cert_err("making a self-signed certificate"))?;
    Ok(Identity { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// A new key and a PEM CSR naming `common_name` in `organizations`, as a
/// kubelet makes for its client certificate.
pub fn make_csr(common_name: &str, organizations: &[&str]) -> Result<(String, String), PkiError> {
    let key = KeyPair::generate().map_err(cert_err("making a key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(common_name, &organizations.iter().map(|o| o.to_string()).collect::<Vec<_>>());
    let csr = params.serialize_request(&key).map_err(cert_err("making the CSR"))?;
    Ok((csr.pem().map_err(cert_err("encoding the CSR"))?, key.serialize_pem()))
}

/// Who a certificate or a CSR names: the user and groups it stands for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subject {
    pub common_name: String,
    pub organizations: Vec<String>,
}

/// The subject of a DER certificate.
pub fn subject_of(cert_der: &[u8]) -> Result<Subject, PkiError> {
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(cert_der)
        .map_err(|e| PkiError::Certificate(format!("reading a certificate: {e}")))?;
    Ok(subject_from_name(cert.subject()))
}

/// The subject a PEM CSR asks for.
pub fn csr_subject(csr_pem: &str) -> Result<Subject, PkiError> {
    use x509_parser::prelude::FromDer;
    let der = pem_to_der(csr_pem)?;
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|e| PkiError::Certificate(format!("reading the CSR: {e}")))?;
    csr.verify_signature().map_err(|e| PkiError::Certificate(format!("the CSR's signature does not verify: {e}")))?;
    Ok(subject_from_name(&csr.certification_request_info.subject))
}

fn subject_from_name(name: &x509_parser::x509::X509Name<'_>) -> Subject {
    let strings = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| -> Vec<String> {
        it.filter_map(|a| a.as_str().ok().map(str::to_string)).collect()
    };
    Subject {
        common_name: strings(&mut name.iter_common_name()).into_iter().next().unwrap_or_default(),
        organizations: strings(&mut name.iter_organization()),
    }
}

/// `sha256:<hex>` of a DER certificate's SubjectPublicKeyInfo: kubeadm's
/// CA pin, which stays the same if the CA is re-issued with the same key.
pub fn spki_hash(cert_der: &[u8]) -> Result<String, PkiError> {
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(cert_der)
        .map_err(|e| PkiError::Certificate(format!("reading a certificate: {e}")))?;
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.tbs_certificate.subject_pki.raw);
    Ok(format!("sha256:{}", hex(digest.as_ref())))
}

/// The first certificate of a PEM text, as DER.
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN "))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END "))
        .map(str::trim)
        .collect();
    if body.is_empty() {
        return Err(PkiError::Certificate("no PEM block found".into()));
    }
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| PkiError::Certificate(format!("a PEM block is not base64: {e}")))
}

/// The token a node joins with: a bootstrap token (`<id>.<secret>`, six
/// and sixteen characters of `[a-z0-9]`, as kubeadm's) that authenticates
/// its certificate request, and the CA's SPKI hash that lets it check the
/// cluster it found before trusting it.
///
/// Written as `K10<hex hash>::<id>.<secret>`, the form of k3s's secure
/// tokens: one string to copy to the new node. A bare `<id>.<secret>` is
/// accepted too, and then the CA is trusted on first use (with a warning),
/// as `kubeadm join --discovery-token-unsafe-skip-ca-verification`.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// `sha256:<hex>`, or `None` for a bare bootstrap token.
    pub ca_hash: Option<String>,
    pub id: String,
    pub secret: String,
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken").field("ca_hash", &self.ca_hash).field("id", &self.id).finish_non_exhaustive()
    }
}

impl JoinToken {
    /// A new random bootstrap token for the CA with this hash.
    pub fn generate(ca_hash: &str) -> JoinToken {
        JoinToken { ca_hash: Some(ca_hash.to_string()), id: random_token_chars(6), secret: random_token_chars(16) }
    }

    /// The bearer token a request carries: `<id>.<secret>`.
    pub fn bearer(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }

    pub fn parse(text: &str) -> Result<JoinToken, PkiError> {
        let text = text.trim();
        let (ca_hash, bootstrap) = match text.strip_prefix("K10") {
            Some(rest) => {
                let (hash, token) = rest
                    .split_once("::")
                    .ok_or_else(|| PkiError::Token("a K10 token is K10<CA hash>::<id>.<secret>; no '::' found".into()))?;
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(PkiError::Token("the CA hash of a K10 token is 64 hex digits (a SHA-256)".into()));
                }
                (Some(format!("sha256:{}", hash.to_ascii_lowercase())), token)
            }
            None => (None, text),
        };
        let (id, secret) = parse_bootstrap_token(bootstrap)
            .ok_or_else(|| PkiError::Token("a bootstrap token is <id>.<secret>: 6 and 16 characters of [a-z0-9]".into()))?;
        Ok(JoinToken { ca_hash, id: id.into(), secret: secret.into() })
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.ca_hash {
            Some(h) => write!(f, "K10{}::{}.{}", h.trim_start_matches("sha256:"), self.id, self.secret),
            None => write!(f, "{}.{}", self.id, self.secret),
        }
    }
}

/// Splits `<id>.<secret>` as upstream's bootstrap token format
/// (`[a-z0-9]{6}\.[a-z0-9]{16}`).
pub fn parse_bootstrap_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

fn random_token_chars(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; n];
    fill_random(&mut bytes);
    // 252 is the largest multiple of 36 below 256; the rest would bias
    // the first letters a little, which a token does not care about.
    bytes.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect()
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes);
    bytes[0] &= 0x7f; // positive, as RFC 5280 asks
    SerialNumber::from_slice(&bytes)
}

fn fill_random(bytes: &mut [u8]) {
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new().fill(bytes).expect("the system's random source works");
}

fn name(common_name: &str, organizations: &[String]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for o in organizations {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

fn set_validity(params: &mut CertificateParams, validity: Duration) {
    // An hour of slack before now, for clocks that disagree a little.
    let now = ::time::OffsetDateTime::now_utc();
    params.not_before = now - ::time::Duration::hours(1);
    params.not_after = now + ::time::Duration::try_from(validity).unwrap_or(::time::Duration::days(365));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io { path: path.display().to_string(), source })
}

/// Writes a file atomically with `mode`.
fn write(path: &Path, text: &str, mode: u32) -> Result<(), PkiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| PkiError::Io { path: path.display().to_string(), source };
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_issues_client_certificates_naming_user_and_groups() {
        let ca = Ca::generate("kubernetes").unwrap();
        let admin = ca.issue(&CertSpec::client("kubernetes-admin", &["system:masters"])).unwrap();
        assert_eq!(
            admin.subject().unwrap(),
            Subject { common_name: "kubernetes-admin".into(), organizations: vec!["system:masters".into()] }
        );
    }

    #[test]
    fn a_signed_csr_keeps_its_subject() {
        let ca = Ca::generate("kubernetes").unwrap();
        let (csr, _key) = make_csr("system:node:n1", &["system:nodes"]).unwrap();
        let asked = csr_subject(&csr).unwrap();
        assert_eq!(asked.common_name, "system:node:n1");
        let cert = ca.sign_csr(&csr, Usage::Client).unwrap();
        assert_eq!(subject_of(&pem_to_der(&cert).unwrap()).unwrap(), asked);
    }

    #[test]
    fn the_hash_survives_a_reload_and_differs_between_cas() {
        let ca = Ca::generate("kubernetes").unwrap();
        let again = Ca::from_pem(&ca.cert_pem, &ca.key_pem).unwrap();
        assert_eq!(ca.hash(), again.hash());
        assert!(ca.hash().starts_with("sha256:") && ca.hash().len() == 7 + 64);
        assert_eq!(spki_hash(&pem_to_der(ca.cert_pem()).unwrap()).unwrap(), ca.hash());
        assert_ne!(ca.hash(), Ca::generate("kubernetes").unwrap().hash());
    }

    #[test]
    fn join_tokens_round_trip_and_bad_ones_say_why() {
        let t = JoinToken::generate(&format!("sha256:{}", "ab".repeat(32)));
        assert_eq!(JoinToken::parse(&t.to_string()).unwrap(), t);
        assert!(parse_bootstrap_token(&t.bearer()).is_some());
        let bare = JoinToken::parse("abcdef.0123456789abcdef").unwrap();
        assert_eq!((bare.ca_hash, bare.id.as_str()), (None, "abcdef"));
        for (bad, why) in [
            ("K10abc::abcdef.0123456789abcdef", "64 hex digits"),
            ("K10", "no '::'"),
            ("abcdef.short", "6 and 16"),
            ("ABCDEF.0123456789abcdef", "[a-z0-9]"),
        ] {
            let e = JoinToken::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
