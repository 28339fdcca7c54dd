//! The SAM template read as data: which functions it builds and which HTTP routes they serve, for
//! the route checks and for finding the built `bootstrap` of each function.

use std::path::{Path, PathBuf};

use serde_norway::Value;

/// The workspace root (the directory holding template.yaml, events/ and functions/).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the workspace").to_path_buf()
}

/// One `AWS::Serverless::Function` of template.yaml.
#[derive(Debug, Clone)]
pub struct Function {
    pub logical_id: String,
    /// `Metadata.BuildProperties.Binary`: the function crate's binary that cargo-lambda builds.
    pub binary: Option<String>,
    pub build_method: Option<String>,
    pub http_routes: Vec<HttpRoute>,
    pub properties: Value,
}

/// One `HttpApi` event of a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    pub method: String,
    pub path: String,
    /// `Auth.Authorizer: NONE`: a public route that the JWT authorizer does not guard.
    pub public: bool,
    /// What `ApiId` points at (`!Ref PlanApi` reads as "PlanApi").
    pub api: Option<String>,
}

impl HttpRoute {
    /// API Gateway's route key, as in an HTTP API v2 event: `GET /v1/plan/{id}`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// template.yaml, parsed. CloudFormation's short-form tags (`!Ref`, `!Sub`, `!GetAtt`) parse as
/// tagged values, which [`untag`] sees through.
pub fn template() -> Value {
    let path = workspace_root().join("template.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// The value under a tag (`!Ref PlanApi` -> `PlanApi`), or the value itself.
pub fn untag(value: &Value) -> &Value {
    match value {
        Value::Tagged(tagged) => untag(&tagged.value),
        other => other,
    }
}

fn string_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(value, |node, key| untag(node).get(*key)).and_then(|v| untag(v).as_str())
}

/// Every `AWS::Serverless::Function`, in template order.
pub fn functions(template: &Value) -> Vec<Function> {
    let Some(resources) = template.get("Resources").and_then(Value::as_mapping) else {
        return Vec::new();
    };
    resources
        .iter()
        .filter(|(_, resource)| string_at(resource, &["Type"]) == Some("AWS::Serverless::Function"))
        .map(|(id, resource)| {
            let properties = resource.get("Properties").cloned().unwrap_or(Value::Null);
            let http_routes = properties
                .get("Events")
                .and_then(Value::as_mapping)
                .into_iter()
                .flatten()
                .filter(|(_, event)| string_at(event, &["Type"]) == Some("HttpApi"))
                .map(|(_, event)| HttpRoute {
                    method: string_at(event, &["Properties", "Method"]).unwrap_or_default().to_ascii_uppercase(),
                    path: string_at(event, &["Properties", "Path"]).unwrap_or_default().to_owned(),
                    public: string_at(event, &["Properties", "Auth", "Authorizer"]) == Some("NONE"),
                    api: string_at(event, &["Properties", "ApiId"]).map(str::to_owned),
                })
                .collect();
            Function {
                logical_id: id.as_str().unwrap_or_default().to_owned(),
                binary: string_at(resource, &["Metadata", "BuildProperties", "Binary"]).map(str::to_owned),
                build_method: string_at(resource, &["Metadata", "BuildMethod"]).map(str::to_owned),
                http_routes,
                properties,
            }
        })
        .collect()
}

/// The function resource whose binary is `binary`.
pub fn function_for_binary(binary: &str) -> Option<Function> {
    functions(&template()).into_iter().find(|f| f.binary.as_deref() == Some(binary))
}

/// The crates under functions/, by directory name (which is also each crate's name).
pub fn function_crates() -> Vec<String> {
    let dir = workspace_root().join("functions");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|entry| entry.path().join("Cargo.toml").is_file())
        .filter_map(|entry| entry.file_name().to_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// template.yaml resolved by the pinned SAM CLI itself (scripts/sam-resolve.py, run with the
/// Python of the tools virtualenv named by `PLAN_TEST_SAM_PYTHON`, which scripts/test sets): each
/// function's environment under `sam local start-api`, `sam local invoke` and in a deployed stack,
/// the transformed template and its conditions. `None` (the test skips) without the variable.
pub fn resolved() -> Option<serde_json::Value> {
    let python = crate::service_var("PLAN_TEST_SAM_PYTHON")?;
    let script = workspace_root().join("scripts/sam-resolve.py");
    let output = std::process::Command::new(&python)
        .arg(&script)
        .current_dir(workspace_root())
        .env("SAM_CLI_TELEMETRY", "0")
        .output()
        .unwrap_or_else(|e| panic!("run {python} {}: {e}", script.display()));
    assert!(output.status.success(), "sam-resolve.py failed:\n{}", String::from_utf8_lossy(&output.stderr));
    Some(serde_json::from_slice(&output.stdout).expect("sam-resolve.py prints JSON"))
}
