use std::process::ExitCode;

use switchboard::config::Config;
use switchboard::startup::Application;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("switchboard: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    actix_web::rt::System::new().block_on(async move {
        let app = match Application::build(config).await {
            Ok(app) => app,
            Err(e) => {
                eprintln!("switchboard: {e}");
                return ExitCode::from(1);
            }
        };
        // Machine-readable for tests and scripts that bind port 0.
        println!("switchboard listening on http://{}", app.addr());
        log::info!("listening on http://{}", app.addr());
        match app.run_until_stopped().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("switchboard: server error: {e}");
                ExitCode::from(1)
            }
        }
    })
}
