//! The data of the tooling detector (`agent/data/tooling.toml`): MCP client files and AI key
//! names, embedded in the binary and parsed once.

use std::borrow::Cow;
use std::path::Path;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::redact;

/// The embedded data file.
const SOURCE: &str = include_str!("../../../data/tooling.toml");

/// Where the data file lives in the source tree (named in the error when it does not parse).
pub const SOURCE_PATH: &str = "agent/data/tooling.toml";

/// A key path from a document's root to a server collection; `*` matches every key.
pub type KeyPath = Vec<String>;

/// Everything `tooling.toml` says.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Server collections of a project file no client claims.
    pub project_servers: Vec<KeyPath>,
    /// Shell start-up files, relative to a home.
    pub shell_profiles: Vec<String>,
    /// MCP clients and their files.
    pub mcp_client: Vec<McpClient>,
    /// AI providers and their key names.
    pub provider: Vec<Provider>,
}

/// One MCP client and where its configuration lives.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpClient {
    /// Name reported as `client`.
    pub client: String,
    /// Where its server collections live in a file.
    pub servers: Vec<KeyPath>,
    /// Its own files, relative to a home (simple globs).
    #[serde(default)]
    pub home: Vec<String>,
    /// General settings files, relative to a home: reported only when they declare a server.
    #[serde(default)]
    pub settings: Vec<String>,
    /// Trailing path components of the project files it reads.
    #[serde(default)]
    pub project: Vec<String>,
}

/// An AI provider and the variable names of its keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Provider name reported with a key (`openai`).
    pub name: String,
    /// Exact key names (compared without regard to ASCII case).
    pub keys: Vec<String>,
    /// Name prefixes whose secret-looking names are keys too.
    pub prefixes: Vec<String>,
}

/// The parsed catalog, or why the embedded file does not parse.
pub fn catalog() -> Result<&'static Catalog, &'static str> {
    static CATALOG: OnceLock<Result<Catalog, String>> = OnceLock::new();
    CATALOG
        .get_or_init(|| toml::from_str(SOURCE).map_err(|e| format!("invalid tooling catalog: {}", e.message())))
        .as_ref()
        .map_err(String::as_str)
}

impl Catalog {
    /// The provider of `name` when it names an AI key: an exact name first, else the longest
    /// matching prefix of a secret-looking name.
    pub fn provider_of(&self, name: &str) -> Option<&str> {
        let exact = self.provider.iter().find(|p| p.keys.iter().any(|k| k.eq_ignore_ascii_case(name)));
        if let Some(p) = exact {
            return Some(&p.name);
        }
        let prefixed = |prefix: &String| {
            name.len() > prefix.len() && name.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix))
        };
        self.provider
            .iter()
            .flat_map(|p| p.prefixes.iter().filter(|x| prefixed(x)).map(move |x| (x.len(), p.name.as_str())))
            .max_by_key(|(len, _)| *len)
            .filter(|_| redact::is_secret_name(name))
            .map(|(_, provider)| provider)
    }

    /// Where `client` keeps its servers (a project file's default for an unknown client).
    pub fn collections(&self, client: &str) -> &[KeyPath] {
        self.mcp_client.iter().find(|c| c.client == client).map_or(&self.project_servers, |c| &c.servers)
    }

    /// The client that reads the project file `path`: the one whose `project` entry matches its
    /// trailing components, else `<dir>-project` after its parent directory (`.kiro` → `kiro`).
    pub fn project_client(&self, path: &Path) -> Cow<'_, str> {
        let claimed = self.mcp_client.iter().find(|c| c.project.iter().any(|p| path.ends_with(p)));
        if let Some(c) = claimed {
            return Cow::Borrowed(&c.client);
        }
        let dir = path.parent().and_then(Path::file_name).map(|d| d.to_string_lossy()).unwrap_or_default();
        let dir = dir.trim_start_matches('.');
        Cow::Owned(format!("{}-project", if dir.is_empty() { "unknown" } else { dir }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_parses_and_names_every_required_key() {
        let c = catalog().unwrap();
        let required = "OPENAI_API_KEY ANTHROPIC_API_KEY AZURE_OPENAI_API_KEY GEMINI_API_KEY GOOGLE_API_KEY \
            MISTRAL_API_KEY COHERE_API_KEY GROQ_API_KEY OPENROUTER_API_KEY HF_TOKEN HUGGING_FACE_HUB_TOKEN \
            HUGGINGFACEHUB_API_TOKEN REPLICATE_API_TOKEN TOGETHER_API_KEY FIREWORKS_API_KEY PERPLEXITY_API_KEY \
            DEEPSEEK_API_KEY XAI_API_KEY VOYAGE_API_KEY PINECONE_API_KEY LANGCHAIN_API_KEY LANGSMITH_API_KEY \
            WANDB_API_KEY NVIDIA_API_KEY NGC_API_KEY CLAUDE_API_KEY AI21_API_KEY ELEVENLABS_API_KEY \
            OLLAMA_API_KEY LITELLM_MASTER_KEY";
        for name in required.split_whitespace() {
            assert!(c.provider_of(name).is_some(), "{name} is not on the key list");
        }
        let mut clients: Vec<&str> = c.mcp_client.iter().map(|m| m.client.as_str()).collect();
        clients.sort_unstable();
        let before = clients.len();
        clients.dedup();
        assert_eq!(before, clients.len(), "a client is listed twice");
    }

    #[test]
    fn providers_by_exact_name_and_by_prefix() {
        let c = catalog().unwrap();
        assert_eq!(c.provider_of("OPENAI_API_KEY"), Some("openai"));
        assert_eq!(c.provider_of("openai_api_key"), Some("openai"));
        assert_eq!(c.provider_of("HF_TOKEN"), Some("huggingface"));
        assert_eq!(c.provider_of("ANTHROPIC_AUTH_TOKEN"), Some("anthropic"));
        assert_eq!(c.provider_of("AZURE_OPENAI_KEY"), Some("azure-openai"));
        assert_eq!(c.provider_of("OPENAI_BASE_URL"), None);
        assert_eq!(c.provider_of("OPENAI_ORG_ID"), None);
        assert_eq!(c.provider_of("HF_HOME"), None);
        assert_eq!(c.provider_of("AWS_SECRET_ACCESS_KEY"), None);
        assert_eq!(c.provider_of("OPENAI_"), None);
    }

    #[test]
    fn project_files_name_their_client() {
        let c = catalog().unwrap();
        assert_eq!(c.project_client(Path::new("/p/.mcp.json")), "claude-code-project");
        assert_eq!(c.project_client(Path::new("/p/.cursor/mcp.json")), "cursor-project");
        assert_eq!(c.project_client(Path::new("/p/.vscode/mcp.json")), "vscode-project");
        assert_eq!(c.project_client(Path::new("/p/.kiro/mcp.json")), "kiro-project");
        assert_eq!(c.collections("vscode-project"), &[vec!["servers".to_string()]]);
        assert_eq!(c.collections("kiro-project").len(), 2);
    }
}
