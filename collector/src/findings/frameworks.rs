//! The risk frameworks findings map to, with every id each one defines, vendored under
//! `collector/data/frameworks/` (sources in each file's header): OWASP Top 10 for LLM
//! Applications 2025, MITRE ATLAS techniques, NIST AI RMF 1.0 subcategories and ISO/IEC
//! 42001:2023 Annex A controls. A test checks that every id a rule names exists in its list, so
//! a mapping cannot drift into an id the framework does not have.

/// A framework and its vendored list of ids.
#[derive(Debug, Clone, Copy)]
pub struct Framework {
    /// The key findings use for it in JSON.
    pub key: &'static str,
    /// Its name.
    pub name: &'static str,
    list: &'static str,
}

/// The four frameworks.
pub const FRAMEWORKS: [Framework; 4] = [
    Framework {
        key: "owasp_llm",
        name: "OWASP Top 10 for LLM Applications 2025",
        list: include_str!("../../data/frameworks/owasp-llm-2025.tsv"),
    },
    Framework { key: "mitre_atlas", name: "MITRE ATLAS", list: include_str!("../../data/frameworks/mitre-atlas.tsv") },
    Framework {
        key: "nist_ai_rmf",
        name: "NIST AI RMF 1.0",
        list: include_str!("../../data/frameworks/nist-ai-rmf-1.0.txt"),
    },
    Framework {
        key: "iso_42001",
        name: "ISO/IEC 42001:2023 Annex A",
        list: include_str!("../../data/frameworks/iso-iec-42001-annex-a.txt"),
    },
];

impl Framework {
    /// Every id of the framework, in the file's order.
    pub fn ids(&self) -> impl Iterator<Item = &'static str> {
        self.list.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).filter_map(|l| l.split('\t').next())
    }

    /// The name of `id` when the list has one (OWASP and ATLAS do).
    pub fn title_of(&self, id: &str) -> Option<&'static str> {
        self.list.lines().find_map(|l| l.strip_prefix(id)?.strip_prefix('\t'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lists_hold_what_the_frameworks_define() {
        let count = |key: &str| FRAMEWORKS.iter().find(|f| f.key == key).map_or(0, |f| f.ids().count());
        assert_eq!(count("owasp_llm"), 10);
        assert_eq!(count("nist_ai_rmf"), 72);
        assert_eq!(count("iso_42001"), 38);
        assert!(count("mitre_atlas") > 150);
        let atlas = &FRAMEWORKS[1];
        assert_eq!(atlas.title_of("AML.T0011.000"), Some("Unsafe AI Artifacts"));
        assert_eq!(FRAMEWORKS[0].title_of("LLM03:2025"), Some("Supply Chain"));
    }
}
