//! `switchboard audit`: walks the hash chain of the whole log (`verify`), against signed anchors
//! when given; signs the chain's head (`anchor`); makes a signing key (`keygen`). See
//! [`crate::anchor`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use switchboard_store::chain::{self, Verification};

use crate::anchor::{self, AnchoredVerification};
use crate::config::ConfigArgs;
use crate::support::{self, StoreUse, refuse};

/// `switchboard audit verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Check the log against the anchors in this file too (with `--public-key`).
    #[arg(long, value_name = "FILE", requires = "public_key")]
    anchors: Option<PathBuf>,
    /// The public key the anchors were signed with: 64 hexadecimal digits or a PEM file.
    #[arg(long, value_name = "KEY", requires = "anchors")]
    public_key: Option<String>,
}

/// Verifies every event of the configured store, and every anchor of the key when asked; exit
/// code 1 names the first position, or the first anchor, that does not verify.
pub async fn verify(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let config = support::load_config(&args.config)?;
    let anchored = match (&args.anchors, &args.public_key) {
        (Some(path), Some(key)) => {
            let key = anchor::read_public_key(key)?;
            if !path.is_file() {
                refuse!("anchors file {} does not exist", path.display());
            }
            Some((anchor::read_anchors(path)?, key))
        }
        _ => None,
    };
    let store = support::configured_store(&config, StoreUse::ReadAsStored).await?;
    let Some((file, key)) = anchored else {
        let verification = chain::verify(store.as_ref())
            .await
            .context("reading the event log")?;
        return Ok(match verification {
            Verification::Intact { events, head_hash } => {
                println!("chain intact: {events} events, head hash {head_hash}");
                ExitCode::SUCCESS
            }
            Verification::Broken { position, reason } => {
                println!("chain broken at position {position}: {reason}");
                ExitCode::from(1)
            }
        });
    };
    if file.torn_tail.is_some() {
        eprintln!("warning: the anchors file ends with an unfinished line (an interrupted append)");
    }
    let verification = anchor::verify(store.as_ref(), &file, &key)
        .await
        .context("reading the event log")?;
    Ok(match verification {
        AnchoredVerification::Intact {
            events,
            head_hash,
            anchors,
            last,
            other_keys,
        } => {
            let others = if other_keys > 0 {
                format!(" ({other_keys} anchor(s) of other keys not checked)")
            } else {
                String::new()
            };
            println!(
                "chain intact: {events} events, head hash {head_hash}; {anchors} anchor(s) hold, \
                 the last at position {} signed at {}{others}",
                last.position, last.signed_at
            );
            ExitCode::SUCCESS
        }
        AnchoredVerification::Failed { reason } => {
            println!("{reason}");
            ExitCode::from(1)
        }
    })
}

/// `switchboard audit anchor`.
#[derive(Debug, Args)]
pub struct AnchorArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The Ed25519 signing key, PKCS#8 PEM [default: `audit.anchor_signing_key`].
    #[arg(long, value_name = "FILE")]
    signing_key: Option<PathBuf>,
    /// The file to append the anchor to [default: `audit.anchors_file`, else
    /// `<data-dir>/anchors.ndjson`].
    #[arg(long, value_name = "FILE")]
    anchors: Option<PathBuf>,
    /// Only print the anchor (e.g. for an external notary); append nothing.
    #[arg(long)]
    print_only: bool,
}

/// Verifies the log from the last anchor of the key in the file (or from the start), signs its
/// head, appends the anchor and prints it with the signed message. Exit code 1 when the log does
/// not verify: nothing is signed then.
pub async fn anchor(args: &AnchorArgs) -> anyhow::Result<ExitCode> {
    let config = support::load_config(&args.config)?;
    let Some(key_path) = args
        .signing_key
        .clone()
        .or_else(|| config.audit.anchor_signing_key.clone())
    else {
        refuse!(
            "no signing key: give --signing-key FILE or set audit.anchor_signing_key \
             (`switchboard audit keygen --out FILE` makes one)"
        );
    };
    let key = anchor::read_signing_key(&key_path)?;
    let path = args
        .anchors
        .clone()
        .unwrap_or_else(|| config.anchors_file());
    let store = support::configured_store(&config, StoreUse::ReadAsStored).await?;
    let signed = if args.print_only {
        let file = anchor::read_anchors(&path)?;
        file.refuse_malformed(&path)?;
        match file.chain_of(&key.verifying_key()) {
            Ok(last) => anchor::sign_head(store.as_ref(), &key, last).await,
            Err(reason) => Err(anchor::AnchorError::Anchors(reason)),
        }
    } else {
        anchor::anchor_file(store.as_ref(), &key, &path).await?
    };
    let signed = match signed {
        Ok(signed) => signed,
        Err(anchor::AnchorError::Store(e)) => {
            return Err(e).context("reading the event log");
        }
        Err(e) => {
            println!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    let Some(signed) = signed else {
        println!("nothing to sign: the log has not moved since the last anchor, or is empty");
        return Ok(ExitCode::SUCCESS);
    };
    if !args.print_only {
        eprintln!("appended to {}", path.display());
    }
    println!("{}", signed.to_line());
    eprintln!("signed message: {}", signed.message());
    Ok(ExitCode::SUCCESS)
}

/// `switchboard audit keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the new signing key (PKCS#8 PEM, readable by its owner only); an existing
    /// file is never overwritten.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Makes a signing key and prints its public key, as hexadecimal digits and as PEM.
pub fn keygen(args: &KeygenArgs) -> anyhow::Result<ExitCode> {
    let key = anchor::generate_key(&args.out)?;
    let public = key.verifying_key();
    eprintln!("signing key written to {}", args.out.display());
    println!("public key: {}", hex::encode(public.as_bytes()));
    print!("{}", anchor::public_pem(&public));
    Ok(ExitCode::SUCCESS)
}
