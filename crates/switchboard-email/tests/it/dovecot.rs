//! A Dovecot of a test's own (Debian's `dovecot-imapd`), started as a child process with a
//! configuration of its own: loopback, a free port, plaintext login, one user in a passwd
//! file, maildirs in a temporary directory. Shared by the e-mail crate's IMAP tests and the
//! server's end-to-end tests (included there with `#[path]`).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::net::TcpStream;

const DOVECOT: &str = "/usr/sbin/dovecot";
/// How long Dovecot may take to greet.
const DEADLINE: Duration = Duration::from_secs(20);
/// The one user's login.
pub(crate) const USER: &str = "admin";
/// The one user's password.
pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// Whether Dovecot can run here: installed, and this process is root (the configuration runs
/// the mail processes as Debian's `dovecot` user). Without it the test is skipped, loudly,
/// unless `SWITCHBOARD_REQUIRE_TOOLS=1` (as `.ci/run` sets, after installing it) makes that a
/// failure.
pub(crate) fn dovecot_available() -> bool {
    let installed = Path::new(DOVECOT).exists();
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0");
    if !(installed && root) {
        let why = if installed {
            "the tests start it as root, and this is not root"
        } else {
            "it is not installed: apt-get install dovecot-imapd"
        };
        assert!(
            std::env::var("SWITCHBOARD_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "Dovecot is required (SWITCHBOARD_REQUIRE_TOOLS=1) but cannot run: {why}"
        );
        eprintln!("SKIPPED: Dovecot (Debian package `dovecot-imapd`) cannot run: {why}");
    }
    installed && root
}

/// A Dovecot of the test's own, stopped when dropped.
pub(crate) struct Dovecot {
    child: Child,
    dir: TempDir,
    /// The IMAP port on 127.0.0.1.
    pub(crate) port: u16,
}

impl Dovecot {
    /// Starts Dovecot with one user, `USER` with `PASSWORD`, and waits until it greets.
    pub(crate) fn start() -> Dovecot {
        // Another process may take the free port between our probe and Dovecot's bind.
        for _ in 0..5 {
            if let Some(dovecot) = Dovecot::try_start() {
                return dovecot;
            }
        }
        panic!("Dovecot did not start in five attempts");
    }

    fn try_start() -> Option<Dovecot> {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        // The login and mail processes drop root: they must reach the run and mail directories.
        let open = |path: &Path, mode| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .expect("permissions");
        };
        open(root, 0o755);
        std::fs::create_dir(root.join("mail")).expect("mail dir");
        open(&root.join("mail"), 0o777);
        std::fs::write(
            root.join("users"),
            format!("{USER}:{{PLAIN}}{PASSWORD}::::::\n"),
        )
        .expect("users");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let root_str = root.display();
        let config = format!(
            "base_dir = {root_str}/run
state_dir = {root_str}/state
log_path = {root_str}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
mail_location = maildir:{root_str}/mail/%u/Maildir
# Notice new mail within a second even where inotify is unavailable.
mailbox_idle_check_interval = 1 secs
# Refuse a wrong password at once: no delay, no growing penalty for the same address.
auth_failure_delay = 0 secs
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root_str}/users
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={root_str}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"
        );
        let config_path = root.join("dovecot.conf");
        std::fs::write(&config_path, config).expect("config");
        let output = std::fs::File::create(root.join("dovecot.out")).expect("output file");
        let child = Command::new(DOVECOT)
            .arg("-F")
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("output file"))
            .stderr(output)
            .spawn()
            .expect("dovecot starts");
        let mut dovecot = Dovecot { child, dir, port };
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(Some(status)) = dovecot.child.try_wait() {
                let log = dovecot.log();
                if log.contains("Address already in use") {
                    return None;
                }
                panic!("dovecot exited with {status}:\n{log}");
            }
            if greets(port) {
                return Some(dovecot);
            }
            assert!(
                Instant::now() < deadline,
                "dovecot did not greet in time:\n{}",
                dovecot.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What Dovecot printed and logged.
    pub(crate) fn log(&self) -> String {
        let read = |name| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("dovecot.out"), read("dovecot.log"))
    }

    /// A second client, logged in.
    pub(crate) async fn client(&self) -> async_imap::Session<TcpStream> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect");
        let mut client = async_imap::Client::new(tcp);
        client
            .read_response()
            .await
            .expect("greeting")
            .expect("greeting");
        client
            .login(USER, PASSWORD)
            .await
            .map_err(|(e, _)| e)
            .expect("login")
    }

    /// Appends `messages` to `mailbox` through a second client.
    pub(crate) async fn append(&self, mailbox: &str, messages: &[Vec<u8>]) {
        let mut session = self.client().await;
        for raw in messages {
            session
                .append(mailbox, None, None, raw)
                .await
                .expect("append");
        }
        session.logout().await.expect("logout");
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its login, auth and mail processes; SIGKILL if it hangs.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether an IMAP server on `port` greets.
fn greets(port: u16) -> bool {
    use std::io::Read;
    let Ok(mut tcp) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
    let mut greeting = [0u8; 4];
    tcp.read_exact(&mut greeting).is_ok() && &greeting == b"* OK"
}
