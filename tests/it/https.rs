//! An https:// origin with a private CA: kiln trusts what `origin.ca-file`
//! names (rustls, no OpenSSL), and refuses a certificate it cannot verify.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, Response};
use tokio_rustls::rustls;

use crate::util::TestSite;

/// A CA, and a server certificate it signed for 127.0.0.1 and localhost.
fn test_pki() -> (
    String,
    rustls::pki_types::CertificateDer<'static>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "kiln test CA");
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = params.signed_by(&key, &issuer).unwrap();
    (
        ca_cert.pem(),
        cert.der().clone(),
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
}

/// Serves two pages over TLS on 127.0.0.1 until the returned sender drops.
async fn https_origin(
    cert: rustls::pki_types::CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> (u16, tokio::sync::oneshot::Sender<()>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = tokio::select! {
                _ = &mut stopped => return,
                accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => return },
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        let body = match req.uri().path() {
                            "/" => "<html><body><a href=\"/secure/\">secure</a></body></html>",
                            "/secure/" => "<html><body>over TLS</body></html>",
                            _ => "",
                        };
                        let mut resp = Response::new(Body::from(body));
                        resp.headers_mut()
                            .insert("content-type", "text/html".parse().unwrap());
                        Ok::<_, std::convert::Infallible>(resp)
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    });
    (port, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_origin_with_a_private_ca_is_baked_over_rustls() {
    let (ca_pem, cert, key) = test_pki();
    let (port, _stop) = https_origin(cert, key).await;
    let url = format!("https://127.0.0.1:{port}");

    // Without the CA: a clear certificate failure, nothing written.
    let site = TestSite::new(&format!("[origin]\nurl = \"{url}\"\nretries = 0\n"));
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.all().to_lowercase().contains("certificate"),
        "{}",
        run.all()
    );
    assert!(site.files().is_empty());

    // With `origin.ca-file`: every page baked.
    std::fs::write(site.path().join("ca.pem"), &ca_pem).unwrap();
    std::fs::write(
        site.path().join("site.toml"),
        format!("[origin]\nurl = \"{url}\"\nca-file = \"ca.pem\"\n"),
    )
    .unwrap();
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        site.read("secure/index.html").unwrap(),
        "<html><body>over TLS</body></html>"
    );

    // A CA file that is not one is a config error naming the key.
    std::fs::write(site.path().join("ca.pem"), "not a certificate").unwrap();
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("origin.ca-file"), "{}", run.all());
}
