//! A failure names what the person must fix in HAL's own words, so a check cannot pass on what a server said.

use hal_testmodel::{Scripted, ScriptedServer};

use crate::runs::{hal, home_with_model};
use crate::support::Sandbox;

/// A 404 from the model server names the model, its id and the base URL, none of which the server's text holds,
/// and keeps the server's words after them; it is not retried.
#[test]
fn a_404_names_the_model_its_id_and_the_base_url_in_hals_words() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![Scripted::status(404, "nothing here")]);
    let repo = home_with_model(&sandbox, &server, "openai");
    let run = hal(&sandbox, &repo, &["help", "run", "hal", "hello", "--json"]);
    assert_eq!(run.code, 1, "ERROR: {run:?}");
    let output = run.json()["output"].as_str().expect("output").to_owned();
    let expected =
        format!("model `scripted` (id `scripted-1`) was not found at {} (HTTP 404): nothing here", server.base_url());
    assert!(output.contains(&expected), "{output}");
    assert_eq!(server.requests().len(), 1, "a 404 is not retried");
}
