//! Gender to `F` or `M` from the common spellings in Czech, Slovak, Polish,
//! Norwegian, German and English; anything else is `wrong_format`.

use crate::map::slug;

/// `Some('F' | 'M')`, or `None` for a spelling that is not a gender.
pub fn normalize(value: &str) -> Option<&'static str> {
    let key = slug(value);
    match key.as_str() {
        "f" | "female" | "woman" | "w" | "zena" | "z" | "k" | "kobieta" | "kvinne" | "frau" | "weiblich" | "fem" => {
            Some("F")
        }
        "m" | "male" | "man" | "muz" | "mezczyzna" | "mann" | "mannlich" | "maennlich" | "herr" => Some("M"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn five_languages() {
        for f in [
            "F", "female", "Žena", "Ž", "K", "kobieta", "Kvinne", "Frau", "weiblich", " w ",
        ] {
            assert_eq!(normalize(f), Some("F"), "{f}");
        }
        for m in ["M", "male", "muž", "Mężczyzna", "mann", "Mann", "männlich", "m"] {
            assert_eq!(normalize(m), Some("M"), "{m}");
        }
        for bad in ["x", "unknown", "2", "femme?"] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }
}
