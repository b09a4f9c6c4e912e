//! Keeping secret values out of everything an isolate hands back.
//!
//! An isolate granted a secret gets its value, and whatever it returns goes to the model and into commits: its
//! result, its error, a trap's last words, its log lines, the files it writes and their names. Each of those is
//! scrubbed: every form of a value HAL handed out (the raw bytes, and the value percent-encoded, in hex and in
//! base64, the encodings an HTTP client or a careless isolate produces) is replaced by `<secret NAME>`. A file
//! name that holds a value is refused rather than rewritten, so that two names never collapse into one. This
//! stops accidents and casual leaks; an isolate determined to leak a secret it was granted can always transform
//! it first, which is why secrets are granted per isolate in `hal.yaml`.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What URL encoders (RFC 3986's unreserved characters kept) leave as it is.
const URL_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Values shorter than this are scrubbed in their raw form only.
const MIN_ENCODED: usize = 6;

/// The forms of every secret value handed out in one call, longest first.
#[derive(Default)]
pub(crate) struct Scrubber {
    forms: Vec<(Vec<u8>, String)>,
}

impl Scrubber {
    /// Scrub `value`, the secret `name`, from now on. Empty values scrub nothing.
    pub(crate) fn add(&mut self, name: &str, value: &str) {
        if value.is_empty() || self.forms.iter().any(|(form, _)| form == value.as_bytes()) {
            return;
        }
        let raw = value.as_bytes();
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let candidates = [
            value.to_owned(),
            utf8_percent_encode(value, NON_ALPHANUMERIC).to_string(),
            utf8_percent_encode(value, URL_COMPONENT).to_string(),
            hex.clone(),
            hex.to_ascii_uppercase(),
            STANDARD.encode(raw),
            STANDARD_NO_PAD.encode(raw),
            URL_SAFE.encode(raw),
            URL_SAFE_NO_PAD.encode(raw),
        ];
        let replacement = format!("<secret {name}>");
        // Encodings of a very short value would match ordinary text everywhere: those are scrubbed raw only.
        let forms = if value.len() < MIN_ENCODED { &candidates[..1] } else { &candidates[..] };
        for form in forms.iter().cloned() {
            if !self.forms.iter().any(|(known, _)| known == form.as_bytes()) {
                self.forms.push((form.into_bytes(), replacement.clone()));
            }
        }
        // Longer forms first: a padded base64 form is replaced whole, not as its unpadded prefix.
        self.forms.sort_by_key(|(form, _)| std::cmp::Reverse(form.len()));
    }

    /// `text` with every form of every value replaced.
    pub(crate) fn text(&self, text: String) -> String {
        if !self.forms.iter().any(|(form, _)| memchr::memmem::find(text.as_bytes(), form).is_some()) {
            return text;
        }
        // Every form is valid UTF-8 replaced by UTF-8 at character boundaries, so the result is UTF-8 too.
        String::from_utf8(self.bytes(text.into_bytes()))
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into())
    }

    /// `bytes` with every form of every value replaced.
    pub(crate) fn bytes(&self, mut bytes: Vec<u8>) -> Vec<u8> {
        for (form, replacement) in &self.forms {
            if memchr::memmem::find(&bytes, form).is_none() {
                continue;
            }
            let mut out = Vec::with_capacity(bytes.len());
            let mut rest = bytes.as_slice();
            while let Some(at) = memchr::memmem::find(rest, form) {
                out.extend_from_slice(&rest[..at]);
                out.extend_from_slice(replacement.as_bytes());
                rest = &rest[at + form.len()..];
            }
            out.extend_from_slice(rest);
            bytes = out;
        }
        bytes
    }

    /// The name of a secret `text` holds a form of, if any.
    pub(crate) fn found_in(&self, text: &str) -> Option<&str> {
        self.forms
            .iter()
            .find(|(form, _)| memchr::memmem::find(text.as_bytes(), form).is_some())
            .map(|(_, replacement)| replacement.trim_start_matches("<secret ").trim_end_matches('>'))
    }
}

#[cfg(test)]
mod tests {
    use super::Scrubber;

    #[test]
    fn every_form_of_a_value_is_replaced() {
        let mut scrubber = Scrubber::default();
        let value = "s3cr3t/+value?";
        scrubber.add("TOKEN", value);
        let forms = [
            value.to_owned(),
            "s3cr3t%2F%2Bvalue%3F".to_owned(),
            value.bytes().map(|b| format!("{b:02x}")).collect::<String>(),
            value.bytes().map(|b| format!("{b:02X}")).collect::<String>(),
            "czNjcjN0Lyt2YWx1ZT8=".to_owned(),
            "czNjcjN0Lyt2YWx1ZT8".to_owned(),
            "czNjcjN0Lyt2YWx1ZT8=".replace('+', "-").replace('/', "_"),
        ];
        for form in forms {
            let text = format!("before {form} after");
            assert_eq!(scrubber.text(text.clone()), "before <secret TOKEN> after", "{form}");
            assert_eq!(scrubber.bytes(text.into_bytes()), b"before <secret TOKEN> after", "{form}");
            assert_eq!(scrubber.found_in(&format!("dir/{form}.txt")), Some("TOKEN"));
        }
        assert_eq!(scrubber.found_in("plain.txt"), None);
        assert_eq!(scrubber.text("nothing here".to_owned()), "nothing here");
    }
}
