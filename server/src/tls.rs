//! Certificates an outgoing client trusts beyond the public web roots: a CA file given for one scrape target
//! or one notification channel, for services whose certificates a private CA signed.

use std::path::PathBuf;

/// A CA bundle read at start, so a missing or broken file is an error then, not a failed request later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFile {
    pub path: PathBuf,
    pub pem: Vec<u8>,
}

impl CaFile {
    /// Reads `path`, which must hold at least one PEM certificate.
    pub fn read(path: PathBuf) -> Result<CaFile, String> {
        let pem =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        match reqwest::Certificate::from_pem_bundle(&pem) {
            Ok(certs) if !certs.is_empty() => Ok(CaFile { path, pem }),
            _ => Err(format!(
                "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            )),
        }
    }

    /// The certificates, parsed; `read` checked that there is at least one.
    pub fn certificates(&self) -> Vec<reqwest::Certificate> {
        reqwest::Certificate::from_pem_bundle(&self.pem).unwrap_or_default()
    }

    /// `builder`, trusting these certificates too.
    pub fn trusted_by(&self, mut builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        for certificate in self.certificates() {
            builder = builder.add_root_certificate(certificate);
        }
        builder
    }
}
