//! `flow recipes list|show`: the machine recipes flow knows (campaign-relative `recipes/`,
//! `$FLOW_RECIPES`, the embedded library).

use super::common::print_json;
use super::{CommandResult, FlowError};
use crate::cli::{OutputFormat, RecipesAction};
use flow_dsl::recipes;

pub fn recipes(action: RecipesAction) -> CommandResult {
    match action {
        RecipesAction::List {
            output: OutputFormat::Json,
        } => {
            let cwd = std::env::current_dir().ok();
            let list: Vec<serde_json::Value> = recipes::machine_names(cwd.as_deref())
                .into_iter()
                .map(|name| {
                    let source = recipes::find_machine(&name, cwd.as_deref()).map(|f| f.source);
                    match flow_dsl::load::load_machine_recipe(&name) {
                        Ok(m) => serde_json::json!({
                            "name": name,
                            "executor": m.executor.as_str(),
                            "description": m.description,
                            "source": source,
                            "valid": true,
                        }),
                        Err(_) => serde_json::json!({
                            "name": name,
                            "executor": null,
                            "description": null,
                            "source": source,
                            "valid": false,
                        }),
                    }
                })
                .collect();
            print_json(&serde_json::json!({ "recipes": list }));
            Ok(0)
        }
        RecipesAction::List { .. } => {
            let cwd = std::env::current_dir().ok();
            for name in recipes::machine_names(cwd.as_deref()) {
                match flow_dsl::load::load_machine_recipe(&name) {
                    Ok(m) => println!(
                        "{name:<16} {:<11} {}",
                        m.executor.as_str(),
                        m.description.unwrap_or_default()
                    ),
                    Err(_) => println!("{name:<16} (invalid recipe: flow recipes show {name})"),
                }
            }
            Ok(0)
        }
        RecipesAction::Show { name, output } => {
            match recipes::find_machine(&name, std::env::current_dir().ok().as_deref()) {
                Some(found) if output == OutputFormat::Json => {
                    print_json(&serde_json::json!({
                        "name": name,
                        "source": found.source,
                        "text": found.text,
                    }));
                    Ok(0)
                }
                Some(found) => {
                    println!("# {}", found.source);
                    print!("{}", found.text);
                    Ok(0)
                }
                None => Err(FlowError::msg(format!(
                    "no machine recipe named `{name}` (flow recipes list)"
                ))),
            }
        }
    }
}
