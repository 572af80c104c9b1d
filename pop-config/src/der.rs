//! The few DER structures the PoP reads and writes itself: a certificate's SubjectPublicKeyInfo
//! (what a browser pins) and PKCS#8 wrappers for PKCS#1 and SEC1 keys (so the TLS stack gets one
//! key format). A full X.509 parser would be a large dependency for three fields.

const SEQUENCE: u8 = 0x30;
const OCTET_STRING: u8 = 0x04;
const BIT_STRING: u8 = 0x03;
const OBJECT_IDENTIFIER: u8 = 0x06;
/// `[0]`, constructed: the certificate version, and a SEC1 key's curve.
const CONTEXT_0: u8 = 0xa0;

/// OID 1.2.840.113549.1.1.1 (rsaEncryption) followed by its NULL parameters.
const RSA_ALGORITHM: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
/// OID 1.2.840.10045.2.1 (id-ecPublicKey); the curve OID follows it.
const EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// PKCS#8 version 0 (v1).
const VERSION_0: &[u8] = &[0x02, 0x01, 0x00];

/// One DER element: its tag, its whole encoding, and its contents.
struct Element<'a> {
    tag: u8,
    whole: &'a [u8],
    contents: &'a [u8],
}

/// The first element of `input` and what follows it; `None` if it is not valid DER.
fn element(input: &[u8]) -> Option<(Element<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    // Multi-byte tags never occur in the structures read here.
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        (rest[..n].iter().fold(0, |len, &b| len << 8 | usize::from(b)), &rest[n..])
    };
    let contents = rest.get(..len)?;
    let whole = &input[..input.len() - rest.len() + len];
    Some((Element { tag, whole, contents }, &rest[len..]))
}

fn expect(input: &[u8], tag: u8) -> Option<(Element<'_>, &[u8])> {
    element(input).filter(|(e, _)| e.tag == tag)
}

/// The DER SubjectPublicKeyInfo of an X.509 certificate.
pub(crate) fn subject_public_key_info(certificate: &[u8]) -> Option<&[u8]> {
    let (certificate, _) = expect(certificate, SEQUENCE)?;
    let (tbs, _) = expect(certificate.contents, SEQUENCE)?;
    let mut fields = tbs.contents;
    if let Some((_version, rest)) = expect(fields, CONTEXT_0) {
        fields = rest;
    }
    // serialNumber, signature, issuer, validity, subject precede subjectPublicKeyInfo.
    for _ in 0..5 {
        fields = element(fields)?.1;
    }
    expect(fields, SEQUENCE).map(|(spki, _)| spki.whole)
}

/// The key bits of a SubjectPublicKeyInfo: an EC point, an RSAPublicKey, an Ed25519 key.
pub(crate) fn subject_public_key(spki: &[u8]) -> Option<&[u8]> {
    let (spki, _) = expect(spki, SEQUENCE)?;
    let (_algorithm, rest) = expect(spki.contents, SEQUENCE)?;
    let (bits, _) = expect(rest, BIT_STRING)?;
    // The first byte counts unused bits, always 0 for keys.
    bits.contents.strip_prefix(&[0])
}

/// A PKCS#1 RSAPrivateKey as PKCS#8.
pub(crate) fn pkcs8_from_pkcs1(pkcs1: &[u8]) -> Vec<u8> {
    private_key_info(RSA_ALGORITHM, pkcs1)
}

/// A SEC1 ECPrivateKey as PKCS#8; `None` if it does not name its curve.
pub(crate) fn pkcs8_from_sec1(sec1: &[u8]) -> Option<Vec<u8>> {
    let (key, _) = expect(sec1, SEQUENCE)?;
    let (_version, rest) = element(key.contents)?;
    let (_private_key, rest) = expect(rest, OCTET_STRING)?;
    let (parameters, _) = expect(rest, CONTEXT_0)?;
    let (curve, _) = expect(parameters.contents, OBJECT_IDENTIFIER)?;
    Some(private_key_info(&[EC_PUBLIC_KEY, curve.whole].concat(), sec1))
}

/// PrivateKeyInfo ::= SEQUENCE { version, AlgorithmIdentifier, privateKey OCTET STRING }.
fn private_key_info(algorithm_contents: &[u8], key: &[u8]) -> Vec<u8> {
    let algorithm = encode(SEQUENCE, algorithm_contents);
    encode(SEQUENCE, &[VERSION_0, &algorithm, &encode(OCTET_STRING, key)].concat())
}

fn encode(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match u8::try_from(contents.len()) {
        Ok(len) if len < 0x80 => out.push(len),
        _ => {
            let len = contents.len().to_be_bytes();
            let significant = &len[len.iter().take_while(|&&b| b == 0).count()..];
            out.push(0x80 | significant.len() as u8);
            out.extend_from_slice(significant);
        }
    }
    out.extend_from_slice(contents);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip() {
        for len in [0, 1, 127, 128, 255, 256, 65535, 65536] {
            let encoded = encode(OCTET_STRING, &vec![7; len]);
            let (e, rest) = element(&encoded).unwrap();
            assert_eq!((e.tag, e.contents.len(), e.whole.len(), rest.len()), (OCTET_STRING, len, encoded.len(), 0));
        }
    }

    #[test]
    fn truncated_input_is_refused() {
        let encoded = encode(SEQUENCE, &[1, 2, 3]);
        assert!(element(&encoded[..encoded.len() - 1]).is_none());
        assert!(subject_public_key_info(&[0x30, 0x82, 0xff]).is_none());
        assert!(subject_public_key_info(b"").is_none());
    }

    #[test]
    fn spki_of_a_generated_certificate_is_its_key_pairs() {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let spki = subject_public_key_info(generated.cert.der()).unwrap();
        assert_eq!(spki, rcgen::PublicKeyData::subject_public_key_info(&generated.signing_key).as_slice());
        assert_eq!(subject_public_key(spki).unwrap(), generated.signing_key.public_key_raw());
    }
}
