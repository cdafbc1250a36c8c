//! `serve --demo`: a realistic organisation, seeded through the real command service.
//!
//! Everything goes through [`CommandService::execute`] with the same commands the API sends, so
//! the demo data obeys every rule of the write side and its events look like production ones. A
//! seeding service of its own runs on a [`ManualClock`] that the simulation moves through the
//! past four weeks (the service stamps each event's domain time from its clock), with a routing
//! reactor of its own, so routing decisions carry the simulated times too. The content is
//! deterministic: a seeded RNG picks channels, customers, delays and outcomes, and every id the
//! seeder chooses is a UUIDv5 of a stable name; only event ids and store times differ between
//! runs.
//!
//! The organisation: Northwind Outdoor (Europe/Berlin, open Monday to Friday 08:00-18:00 and
//! Saturday morning), ten users (the super admin [`ADMIN_EMAIL`], an admin, five agents in the
//! Support team, three in the Revenue team; two of them away, two with a capacity), a chat bot,
//! three inboxes (Support; Sales; Billing, restricted to the Revenue team and fed by its fallback
//! address), channels of every kind (shared e-mail, website chat, Messenger, a form, and one
//! agent's private e-mail), routing rules (round robin, least loaded, bot first), an e-mail deny
//! rule, companies, contacts with owners, deals and tickets. Then [`CONVERSATIONS`] conversations
//! spread over the past four weeks: inbound messages, bot answers and handoffs, replies with
//! delivery reports, comments with @mentions, reassignments, closes, reopens by customers and by
//! hand, visitors turned into contacts, tickets from conversations, and filtered newsletters.
//!
//! `site`: the demo site at `/demo/`, a page embedding the chat widget and the quote form.

pub mod site;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Datelike, NaiveTime, TimeDelta, Timelike, Utc};
use proto_events::Actor;
use proto_events::clock::ManualClock;
use proto_events::event::{
    Assignee, Availability, ChannelKind, EmailAccess, EmailHeaders, FilterAction, FormField,
    Identity, InboundMessage, Member, OpeningInterval, RecordKind, RecordRef, Role,
    RoutingStrategy, RuleScope, SenderPattern, Weekday,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use switchboard_domain::channel::ChannelCommand;
use switchboard_domain::contact::ContactCommand;
use switchboard_domain::conversation::{
    Conversation, ConversationCommand, DeliveryOutcome, Status,
};
use switchboard_domain::filter::MailSignals;
use switchboard_domain::setup::SetupCommand;
use switchboard_service::reactor::RoutingReactor;
use switchboard_service::{Command, CommandMeta, CommandService, Outcome, ServiceError};
use switchboard_store::{Direction, EventStore, Position, StreamFrom};
use uuid::Uuid;

/// The super admin's login; `serve --demo` prints a token for it.
pub const ADMIN_EMAIL: &str = "admin@demo.switchboard.test";

/// The demo's shared Support address.
pub const SUPPORT_ADDRESS: &str = "support@northwind.example";

/// How many customer conversations the demo holds.
pub const CONVERSATIONS: usize = 500;

/// The RNG seed: the same seed, the same organisation and history.
const SEED: u64 = 0x5717_c4b0_a2d0;

/// How far back the history goes.
const HISTORY_DAYS: i64 = 28;

/// The namespace of every id the seeder chooses.
const DEMO_IDS: Uuid = Uuid::from_u128(0x0d3e_0a11_6f4b_4c1e_9a52_7b3c_d1e0_5eed);

/// A stable id for `name`.
fn id(name: &str) -> Uuid {
    Uuid::new_v5(&DEMO_IDS, name.as_bytes())
}

/// What seeding did, for the log and the banner.
#[derive(Debug, Clone, PartialEq)]
pub struct Seeded {
    /// Customer conversations started.
    pub conversations: usize,
    /// Commands sent through the command service.
    pub commands: u64,
    /// Commands the write side refused (logged at debug level; a handful is normal: a bot that
    /// may not close, an agent who may not see a restricted conversation any more).
    pub refused: u64,
    /// The store's head afterwards.
    pub events: u64,
    /// Wall-clock time spent.
    pub elapsed: Duration,
}

/// Whether the store is empty, so that `--demo` should seed it.
pub async fn should_seed(store: &dyn EventStore) -> anyhow::Result<bool> {
    Ok(store.head().await.context("reading the store's head")? == Position::START)
}

/// Seeds the demo organisation into `store` (which should be empty) with `conversations`
/// conversations whose history ends shortly before `now`; inboxes without team e-mail get
/// fallback addresses at `fallback_domain`. Customers' addresses are reserved under names keyed
/// by `names`, as the server reserves them (ADR 0007).
pub async fn seed(
    store: Arc<dyn EventStore>,
    now: DateTime<Utc>,
    conversations: usize,
    fallback_domain: &str,
    names: Option<proto_events::streams::NameKey>,
) -> anyhow::Result<Seeded> {
    let started = Instant::now();
    let start = now - TimeDelta::days(HISTORY_DAYS + 1);
    let clock = Arc::new(ManualClock::new(start));
    let mut service = CommandService::open(store.clone(), clock.clone())
        .await
        .context("opening the seeding command service")?
        .with_fallback_domain(fallback_domain);
    if let Some(names) = names {
        service = service.with_reservation_names(names);
    }
    let service = Arc::new(service);
    let reactor = RoutingReactor::spawn(service.clone());
    let mut seeder = Seeder {
        service,
        store,
        clock,
        reactor,
        rng: StdRng::seed_from_u64(SEED),
        commands: 0,
        refused: 0,
        org: Org::new(),
    };
    let outcome = async {
        seeder.setup().await?;
        seeder.records().await?;
        seeder.conversations(now, conversations).await?;
        seeder.settle().await
    }
    .await;
    seeder.reactor.task.abort();
    outcome?;
    let events = seeder.store.head().await?.0;
    Ok(Seeded {
        conversations,
        commands: seeder.commands,
        refused: seeder.refused,
        events,
        elapsed: started.elapsed(),
    })
}

/// One user of the demo organisation.
#[derive(Debug, Clone)]
struct Person {
    id: Uuid,
    email: String,
    name: &'static str,
    role: Role,
}

/// The ids of what setup creates.
#[derive(Debug)]
struct Org {
    organisation: Uuid,
    users: Vec<Person>,
    support_team: Uuid,
    revenue_team: Uuid,
    bot: Uuid,
    support: Uuid,
    sales: Uuid,
    billing: Uuid,
    support_email: Uuid,
    chat: Uuid,
    messenger: Uuid,
    form: Uuid,
    sales_email: Uuid,
    private_email: Uuid,
    /// Known customers: (contact id, name, e-mail, company index).
    customers: Vec<(Uuid, String, String, usize)>,
    companies: Vec<(Uuid, &'static str, &'static str)>,
}

const USERS: [(&str, &str, Role); 10] = [
    ("admin", "Ada Lindqvist", Role::SuperAdmin),
    ("kai", "Kai Brenner", Role::Admin),
    ("mia", "Mia Schulz", Role::Agent),
    ("noah", "Noah Weber", Role::Agent),
    ("liam", "Liam Becker", Role::Agent),
    ("emma", "Emma Wagner", Role::Agent),
    ("olivia", "Olivia Hoffmann", Role::Agent),
    ("sofia", "Sofia Fischer", Role::Agent),
    ("lucas", "Lucas Meyer", Role::Agent),
    ("jonas", "Jonas Wolf", Role::Agent),
];

const COMPANIES: [(&str, &str); 24] = [
    ("Alpine Trails GmbH", "alpine-trails.example"),
    ("Baltic Paddle Co.", "baltic-paddle.example"),
    ("Cascade Climbing Club", "cascade-climbing.example"),
    ("Dune Riders", "dune-riders.example"),
    ("Evergreen Scouts", "evergreen-scouts.example"),
    ("Fjord Expeditions", "fjord-expeditions.example"),
    ("Glacier Guides", "glacier-guides.example"),
    ("Harbour Sailing School", "harbour-sailing.example"),
    ("Ironpeak Fitness", "ironpeak.example"),
    ("Juniper Camping", "juniper-camping.example"),
    ("Krakow Cycling", "krakow-cycling.example"),
    ("Lakeside Lodges", "lakeside-lodges.example"),
    ("Moorland Ramblers", "moorland-ramblers.example"),
    ("Nordic Ski Academy", "nordic-ski.example"),
    ("Oakwood Outfitters", "oakwood.example"),
    ("Pine Ridge Hostels", "pine-ridge.example"),
    ("Quarry Bouldering", "quarry-bouldering.example"),
    ("Riverbend Rafting", "riverbend.example"),
    ("Summit Schools", "summit-schools.example"),
    ("Tundra Travel", "tundra-travel.example"),
    ("Upland Orienteering", "upland-o.example"),
    ("Valley Vans", "valley-vans.example"),
    ("Windward Kites", "windward-kites.example"),
    ("Yukon Running", "yukon-running.example"),
];

const FIRST_NAMES: [&str; 24] = [
    "Anna", "Ben", "Clara", "David", "Elif", "Felix", "Greta", "Hugo", "Ines", "Jan", "Karla",
    "Leon", "Marta", "Nils", "Oskar", "Paula", "Rafael", "Sara", "Tom", "Ursula", "Viktor",
    "Wiebke", "Yusuf", "Zoe",
];

const LAST_NAMES: [&str; 20] = [
    "Almeida", "Berg", "Costa", "Dahl", "Eriksen", "Ferreira", "Gruber", "Hansen", "Iversen",
    "Jansen", "Kowalski", "Larsen", "Moreau", "Nowak", "Olsen", "Petrov", "Quist", "Rossi",
    "Svensson", "Tanaka",
];

/// Subjects and opening messages, per inbox.
const SUPPORT_TOPICS: [(&str, &str); 8] = [
    (
        "Where is my order?",
        "Hi, I ordered a tent ten days ago and tracking has not moved since Monday. Can you check?",
    ),
    (
        "Zip broken on my jacket",
        "The main zip of my rain jacket came apart after two weeks. Is this covered by warranty?",
    ),
    (
        "Wrong size delivered",
        "I ordered hiking boots in 43 but received 41. How do I exchange them?",
    ),
    (
        "Return label missing",
        "There was no return label in the parcel. Could you send me one?",
    ),
    (
        "Stove does not ignite",
        "The gas stove I bought does not ignite at all, even with a new cartridge.",
    ),
    (
        "Change delivery address",
        "Can I still change the delivery address of my order? I'll be at my parents' next week.",
    ),
    (
        "Sleeping bag temperature rating",
        "Is the Polar 800 sleeping bag warm enough for -10°C nights?",
    ),
    (
        "Discount code not working",
        "The code SPRING15 from your newsletter is rejected at checkout.",
    ),
];

const SALES_TOPICS: [(&str, &str); 6] = [
    (
        "Group discount for our club",
        "We are a club of 40 members and would like to order matching jackets. Do you offer group pricing?",
    ),
    (
        "Quote for 25 tents",
        "Could you send us a quote for 25 two-person tents for our summer camp?",
    ),
    (
        "Reseller partnership",
        "We run an outdoor shop in Graz and would like to carry your brand.",
    ),
    (
        "Custom logo embroidery",
        "Can you embroider our school logo on fleece jackets? What's the minimum order?",
    ),
    (
        "Demo equipment for a trade fair",
        "We'd like to borrow demo equipment for a trade fair in May. Is that possible?",
    ),
    (
        "Volume pricing for kayaks",
        "What would 12 touring kayaks cost, delivered to Kiel?",
    ),
];

const BILLING_TOPICS: [(&str, &str); 5] = [
    (
        "Invoice missing VAT number",
        "Our invoice does not show our VAT number. Could you reissue it?",
    ),
    (
        "Charged twice",
        "My card was charged twice for the same order. Please refund one payment.",
    ),
    (
        "Payment terms",
        "Can we pay by invoice with 30 days terms for our company account?",
    ),
    (
        "Refund not received",
        "I returned my boots three weeks ago but have not received the refund yet.",
    ),
    (
        "Update billing address",
        "Please update the billing address on our account to our new office.",
    ),
];

const FOLLOW_UPS: [&str; 6] = [
    "Thanks! One more question: how long will that take?",
    "I haven't heard back yet, any news?",
    "That didn't work, unfortunately. What else can I try?",
    "Great, and could you also confirm by e-mail?",
    "Sorry, I forgot to attach the order number: it's in my account.",
    "OK, understood. What are the next steps?",
];

const REPLIES: [&str; 6] = [
    "Thanks for reaching out! I've looked into it and will get back to you within the day.",
    "Sorry about that. I've arranged a replacement; you'll get a confirmation shortly.",
    "Good question! Here is what I found out for you.",
    "I've forwarded this to our warehouse team and will keep you posted.",
    "All done on our side. Let me know if there is anything else we can do.",
    "Thanks for your patience, this is now sorted.",
];

const COMMENTS: [&str; 5] = [
    "can you take a look? This customer has asked before.",
    "do you know if the warehouse has this in stock?",
    "FYI: this one might need a refund approval.",
    "could you double-check the shipping status?",
    "this is a big account, please handle with care.",
];

impl Org {
    fn new() -> Org {
        let users = USERS
            .iter()
            .map(|(login, name, role)| {
                let email = format!("{login}@demo.switchboard.test");
                Person {
                    id: id(&format!("user:{email}")),
                    email,
                    name,
                    role: *role,
                }
            })
            .collect();
        let companies = COMPANIES
            .iter()
            .map(|(name, domain)| (id(&format!("company:{domain}")), *name, *domain))
            .collect();
        Org {
            organisation: id("organisation"),
            users,
            support_team: id("team:support"),
            revenue_team: id("team:revenue"),
            bot: id("bot:sunny"),
            support: id("inbox:support"),
            sales: id("inbox:sales"),
            billing: id("inbox:billing"),
            support_email: id("channel:support-email"),
            chat: id("channel:chat"),
            messenger: id("channel:messenger"),
            form: id("channel:form"),
            sales_email: id("channel:sales-email"),
            private_email: id("channel:lucas-private"),
            customers: Vec::new(),
            companies,
        }
    }

    fn user(&self, login: &str) -> &Person {
        let email = format!("{login}@demo.switchboard.test");
        // Only called with the logins of `USERS`.
        self.users
            .iter()
            .find(|u| u.email == email)
            .unwrap_or(&self.users[0])
    }

    fn users(&self, logins: &[&str]) -> Vec<Uuid> {
        logins.iter().map(|l| self.user(l).id).collect()
    }

    /// The agents who work an inbox's conversations, for the simulation's choices.
    fn pool(&self, channel: Channel) -> Vec<Uuid> {
        match channel {
            Channel::SupportEmail | Channel::Chat => {
                self.users(&["mia", "noah", "liam", "emma", "olivia"])
            }
            Channel::Messenger | Channel::Form | Channel::SalesEmail => {
                self.users(&["sofia", "lucas", "kai"])
            }
            Channel::Billing => self.users(&["sofia", "lucas", "jonas"]),
            Channel::Private => self.users(&["lucas"]),
        }
    }
}

/// Where a simulated conversation comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Channel {
    SupportEmail,
    Chat,
    Messenger,
    Form,
    SalesEmail,
    Billing,
    Private,
}

impl Channel {
    fn pick(rng: &mut StdRng) -> Channel {
        match rng.random_range(0..100) {
            0..30 => Channel::SupportEmail,
            30..55 => Channel::Chat,
            55..67 => Channel::Messenger,
            67..76 => Channel::Form,
            76..86 => Channel::SalesEmail,
            86..96 => Channel::Billing,
            _ => Channel::Private,
        }
    }

    fn is_email(self) -> bool {
        matches!(
            self,
            Channel::SupportEmail | Channel::SalesEmail | Channel::Billing | Channel::Private
        )
    }

    fn topics(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Channel::SupportEmail | Channel::Chat => &SUPPORT_TOPICS,
            Channel::Billing => &BILLING_TOPICS,
            _ => &SALES_TOPICS,
        }
    }
}

/// Something that happens in one simulated conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// The customer writes (the first message starts the conversation; a later one after a close
    /// reopens it).
    Inbound,
    /// The bot answers.
    BotReply,
    /// The bot hands the conversation to humans (routing picks).
    BotHandOff,
    /// The bot closes the conversation (solved without humans).
    BotClose,
    /// An agent answers (taking it first if nobody has it); e-mail replies get a delivery report.
    Reply,
    /// An agent comments, mentioning a colleague.
    Comment,
    /// The conversation is reassigned to a colleague.
    Reassign,
    /// The conversation is closed.
    Close,
    /// An agent reopens it by hand.
    Reopen,
    /// An agent opens a ticket from the conversation.
    Ticket,
    /// An agent turns the unknown visitor into a contact.
    RecordCreated,
}

/// One simulated conversation.
#[derive(Debug)]
struct Thread {
    index: usize,
    channel: Channel,
    /// The known customer writing, or `None` for a new visitor.
    customer: Option<usize>,
    topic: usize,
    conversation: Option<Uuid>,
    inbound: u32,
    replies: u32,
}

struct Seeder {
    service: Arc<CommandService>,
    store: Arc<dyn EventStore>,
    clock: Arc<ManualClock>,
    reactor: RoutingReactor,
    rng: StdRng,
    commands: u64,
    refused: u64,
    org: Org,
}

fn system() -> Actor {
    Actor::System {
        component: "demo".into(),
    }
}

fn user(id: Uuid) -> Actor {
    Actor::User { id }
}

impl Seeder {
    /// Runs one command; a refusal by the write side is counted and logged, not an error.
    async fn run(&mut self, actor: Actor, command: Command) -> anyhow::Result<Option<Outcome>> {
        self.commands += 1;
        let name = command.name();
        match self.service.execute(CommandMeta::by(actor), command).await {
            Ok(outcome) => Ok(Some(outcome)),
            Err(error @ (ServiceError::Domain(_) | ServiceError::Conflict { .. })) => {
                self.refused += 1;
                tracing::debug!(command = name, %error, "demo command refused");
                Ok(None)
            }
            Err(error) => Err(error).with_context(|| format!("seeding: {name}")),
        }
    }

    /// Waits until the routing reactor has acted on everything in the store.
    async fn settle(&mut self) -> anyhow::Result<()> {
        loop {
            let head = self.store.head().await?;
            let mut processed = self.reactor.processed.clone();
            tokio::time::timeout(Duration::from_secs(60), processed.wait_for(|p| *p >= head))
                .await
                .context("the routing reactor did not catch up within 60 s")?
                .context("the routing reactor stopped")?;
            if self.store.head().await? == head {
                return Ok(());
            }
        }
    }

    /// Sets the simulated time.
    fn at(&self, time: DateTime<Utc>) {
        self.clock.set(time);
    }

    async fn setup(&mut self) -> anyhow::Result<()> {
        use SetupCommand as S;
        let o = &self.org;
        let mut commands = vec![
            S::CreateOrganisation {
                organisation_id: o.organisation,
                name: "Northwind Outdoor".into(),
                time_zone: "Europe/Berlin".into(),
            },
            S::SetBusinessHours {
                time_zone: "Europe/Berlin".into(),
                weekly: [
                    Weekday::Monday,
                    Weekday::Tuesday,
                    Weekday::Wednesday,
                    Weekday::Thursday,
                    Weekday::Friday,
                ]
                .into_iter()
                .map(|day| interval(day, 8, 18))
                .chain([interval(Weekday::Saturday, 10, 14)])
                .collect(),
                holidays: Vec::new(),
            },
        ];
        for person in &o.users {
            commands.push(S::CreateUser {
                user_id: person.id,
                email: person.email.clone(),
                name: person.name.into(),
                role: person.role,
            });
        }
        for person in &o.users {
            let away = person.email.starts_with("olivia@") || person.email.starts_with("jonas@");
            if !away {
                commands.push(S::SetAvailability {
                    user_id: person.id,
                    availability: Availability::Available,
                });
            }
        }
        for (login, capacity) in [("noah", 8), ("emma", 15)] {
            commands.push(S::SetCapacity {
                user_id: o.user(login).id,
                max_open_conversations: Some(capacity),
            });
        }
        commands.push(S::CreateTeam {
            team_id: o.support_team,
            name: "Support".into(),
        });
        commands.push(S::CreateTeam {
            team_id: o.revenue_team,
            name: "Revenue".into(),
        });
        for login in ["mia", "noah", "liam", "emma", "olivia"] {
            commands.push(S::AddTeamMember {
                team_id: o.support_team,
                user_id: o.user(login).id,
            });
        }
        for login in ["sofia", "lucas", "jonas"] {
            commands.push(S::AddTeamMember {
                team_id: o.revenue_team,
                user_id: o.user(login).id,
            });
        }
        for (inbox_id, name) in [
            (o.support, "Support"),
            (o.sales, "Sales"),
            (o.billing, "Billing"),
        ] {
            commands.push(S::CreateInbox {
                inbox_id,
                name: name.into(),
            });
        }
        let mut members = vec![
            (o.support, Member::Team { id: o.support_team }),
            (o.billing, Member::Team { id: o.revenue_team }),
        ];
        for login in ["sofia", "lucas", "kai"] {
            members.push((
                o.sales,
                Member::User {
                    id: o.user(login).id,
                },
            ));
        }
        for (inbox_id, member) in members {
            commands.push(S::AddInboxMember { inbox_id, member });
        }
        commands.push(S::RestrictInbox {
            inbox_id: o.billing,
            team_ids: vec![o.revenue_team],
        });
        commands.push(S::SetNotificationPreferences {
            preferences: proto_events::event::NotificationPreferencesChanged {
                user_id: o.user("mia").id,
                new_conversation_in_my_inboxes: false,
                assigned_to_me: true,
                new_message_on_my_conversations: true,
                mentioned_in_comment: true,
            },
        });
        commands.push(SetupCommand::CreateBot {
            bot_id: o.bot,
            name: "Sunny (chat bot)".into(),
        });
        for command in commands {
            self.run(system(), Command::Setup(command)).await?;
        }
        self.channels().await?;
        self.settle().await
    }

    async fn channels(&mut self) -> anyhow::Result<()> {
        use ChannelCommand as C;
        let o = &self.org;
        let lucas = o.user("lucas").id;
        let commands = vec![
            C::ConnectEmail {
                channel_id: o.support_email,
                inbox_id: o.support,
                address: SUPPORT_ADDRESS.into(),
                access: EmailAccess::Shared,
            },
            C::ConnectChat {
                channel_id: o.chat,
                inbox_id: o.support,
                name: "Website chat".into(),
            },
            C::ConnectMessenger {
                channel_id: o.messenger,
                inbox_id: o.sales,
                page_id: "104857600123".into(),
                page_name: "Northwind Outdoor".into(),
            },
            C::ConnectForm {
                channel_id: o.form,
                inbox_id: o.sales,
                name: "Request a quote".into(),
            },
            C::ConnectEmail {
                channel_id: o.sales_email,
                inbox_id: o.sales,
                address: "sales@northwind.example".into(),
                access: EmailAccess::Shared,
            },
            C::ConnectEmail {
                channel_id: o.private_email,
                inbox_id: o.sales,
                address: "lucas.meyer@northwind.example".into(),
                access: EmailAccess::Private {
                    owner_user_id: lucas,
                },
            },
            C::SetRoutingRule {
                rule_id: id("rule:support"),
                scope: RuleScope::Inbox { id: o.support },
                strategy: RoutingStrategy::RoundRobin,
                targets: vec![Member::Team { id: o.support_team }],
                bot_id: None,
            },
            C::SetRoutingRule {
                rule_id: id("rule:chat"),
                scope: RuleScope::Channel { id: o.chat },
                strategy: RoutingStrategy::BotFirst,
                targets: vec![Member::Team { id: o.support_team }],
                bot_id: Some(o.bot),
            },
            C::SetRoutingRule {
                rule_id: id("rule:sales"),
                scope: RuleScope::Inbox { id: o.sales },
                strategy: RoutingStrategy::LeastLoaded,
                targets: o
                    .users(&["sofia", "lucas", "kai"])
                    .into_iter()
                    .map(|id| Member::User { id })
                    .collect(),
                bot_id: None,
            },
            C::SetRoutingRule {
                rule_id: id("rule:billing"),
                scope: RuleScope::Inbox { id: o.billing },
                strategy: RoutingStrategy::RoundRobin,
                targets: vec![Member::Team { id: o.revenue_team }],
                bot_id: None,
            },
            C::AddEmailFilterRule {
                rule_id: id("filter:deny-offers"),
                channel_id: o.support_email,
                action: FilterAction::Deny,
                pattern: SenderPattern::Domain {
                    domain: "cheap-offers.example".into(),
                },
            },
        ];
        for command in commands {
            self.run(system(), Command::Channel(command)).await?;
        }
        Ok(())
    }

    /// Companies, contacts (some with owners), deals.
    async fn records(&mut self) -> anyhow::Result<()> {
        let companies = self.org.companies.clone();
        for (company_id, name, domain) in &companies {
            self.run(
                system(),
                Command::CreateCompany {
                    company_id: *company_id,
                    name: (*name).into(),
                    domain: Some((*domain).into()),
                },
            )
            .await?;
        }
        let owners = self.org.users(&["sofia", "lucas", "kai"]);
        for n in 0..120 {
            let first = FIRST_NAMES[n % FIRST_NAMES.len()];
            let last = LAST_NAMES[(n * 7 + n / FIRST_NAMES.len()) % LAST_NAMES.len()];
            let company = self.rng.random_range(0..companies.len());
            let email = format!(
                "{}.{}{}@{}",
                first.to_lowercase(),
                last.to_lowercase(),
                if n >= FIRST_NAMES.len() {
                    (n / FIRST_NAMES.len()).to_string()
                } else {
                    String::new()
                },
                companies[company].2
            );
            let contact_id = id(&format!("contact:{email}"));
            let mut properties = BTreeMap::new();
            properties.insert("first_name".to_owned(), first.to_owned());
            properties.insert("last_name".to_owned(), last.to_owned());
            properties.insert(
                "phone".to_owned(),
                format!(
                    "+49 30 {:04} {:04}",
                    1000 + n * 37 % 9000,
                    2000 + n * 53 % 7000
                ),
            );
            if self.rng.random_bool(0.4) {
                properties.insert("lifecycle_stage".to_owned(), "customer".to_owned());
            }
            let created = self
                .run(
                    system(),
                    Command::CreateContact {
                        contact_id,
                        identities: vec![Identity::Email {
                            address: email.clone(),
                        }],
                        properties,
                        from_conversation: None,
                    },
                )
                .await?;
            if created.is_none() {
                continue;
            }
            self.run(
                system(),
                Command::AssociateRecords {
                    from: record(RecordKind::Contact, contact_id),
                    to: record(RecordKind::Company, companies[company].0),
                },
            )
            .await?;
            if n.is_multiple_of(4) {
                let owner = owners[n / 4 % owners.len()];
                self.run(
                    system(),
                    Command::Contact {
                        contact_id,
                        command: ContactCommand::ChangeOwner {
                            owner_user_id: Some(owner),
                        },
                    },
                )
                .await?;
            }
            self.org
                .customers
                .push((contact_id, format!("{first} {last}"), email, company));
        }
        let stages = ["qualification", "proposal", "negotiation", "won", "lost"];
        let products = [
            "tents",
            "jackets",
            "kayaks",
            "climbing gear",
            "sleeping bags",
        ];
        for n in 0..30 {
            let company = n % companies.len();
            let deal_id = id(&format!("deal:{n}"));
            let stage = stages[self.rng.random_range(0..stages.len())];
            let product = products[self.rng.random_range(0..products.len())];
            self.run(
                system(),
                Command::CreateDeal {
                    deal_id,
                    name: format!("{}: {product}", companies[company].1),
                    stage: Some(stage.into()),
                    owner_user_id: Some(owners[n % owners.len()]),
                },
            )
            .await?;
            self.run(
                system(),
                Command::AssociateRecords {
                    from: record(RecordKind::Deal, deal_id),
                    to: record(RecordKind::Company, companies[company].0),
                },
            )
            .await?;
            if let Some((contact_id, ..)) = self
                .org
                .customers
                .iter()
                .find(|(.., c)| *c == company)
                .cloned()
            {
                self.run(
                    system(),
                    Command::AssociateRecords {
                        from: record(RecordKind::Deal, deal_id),
                        to: record(RecordKind::Contact, contact_id),
                    },
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Plans every conversation's actions with times, then plays them in time order.
    async fn conversations(&mut self, now: DateTime<Utc>, count: usize) -> anyhow::Result<()> {
        let first_day = now - TimeDelta::days(HISTORY_DAYS);
        let last_moment = now - TimeDelta::minutes(2);
        let mut threads = Vec::with_capacity(count);
        let mut plan: Vec<(DateTime<Utc>, usize, usize, Action)> = Vec::new();
        for index in 0..count {
            let channel = Channel::pick(&mut self.rng);
            let known = !matches!(channel, Channel::Chat | Channel::Messenger)
                && self.rng.random_bool(0.7)
                || self.rng.random_bool(0.2);
            let customer = (known && !self.org.customers.is_empty())
                .then(|| self.rng.random_range(0..self.org.customers.len()));
            let topic = self.rng.random_range(0..channel.topics().len());
            threads.push(Thread {
                index,
                channel,
                customer,
                topic,
                conversation: None,
                inbound: 0,
                replies: 0,
            });
            let start = self.start_time(first_day, last_moment);
            let actions = self.script(channel, customer.is_none(), start);
            for (step, (time, action)) in actions.into_iter().enumerate() {
                if time < last_moment {
                    plan.push((time, index, step, action));
                }
            }
        }
        // A few newsletters and offers that the e-mail filters catch.
        for n in 0..12 {
            let time = self.start_time(first_day, last_moment);
            self.at(time);
            self.newsletter(n).await?;
        }
        plan.sort_by_key(|(time, index, step, _)| (*time, *index, *step));
        for (time, index, _, action) in plan {
            self.at(time);
            self.act(&mut threads[index], action).await?;
        }
        Ok(())
    }

    /// A start time in the past weeks, mostly during opening hours on weekdays.
    fn start_time(&mut self, first_day: DateTime<Utc>, last: DateTime<Utc>) -> DateTime<Utc> {
        let span = (last - first_day).num_minutes().max(1);
        loop {
            let t = first_day + TimeDelta::minutes(self.rng.random_range(0..span));
            // Berlin is UTC+1 or +2; UTC 07-16 is roughly opening hours.
            let busy = (7..17).contains(&t.hour());
            let weekend = t.weekday().number_from_monday() >= 6;
            let keep = match (busy, weekend) {
                (true, false) => true,
                (true, true) => self.rng.random_bool(0.3),
                (false, false) => self.rng.random_bool(0.2),
                (false, true) => self.rng.random_bool(0.08),
            };
            if keep {
                return t;
            }
        }
    }

    /// The time an agent gets to something that arrived at `t`: minutes to hours, pushed to the
    /// next morning outside opening hours.
    fn agent_delay(&mut self, t: DateTime<Utc>) -> DateTime<Utc> {
        let minutes = match self.rng.random_range(0..100) {
            0..45 => self.rng.random_range(2..30),
            45..80 => self.rng.random_range(30..180),
            _ => self.rng.random_range(180..600),
        };
        let mut reply = t + TimeDelta::minutes(minutes);
        let closed = !(7..17).contains(&reply.hour()) || reply.weekday().number_from_monday() >= 6;
        if closed {
            // Next weekday morning, 07:00-08:30 UTC.
            let mut day = reply.date_naive();
            if reply.hour() >= 17 {
                day = day.succ_opt().unwrap_or(day);
            }
            while day.weekday().number_from_monday() >= 6 {
                day = day.succ_opt().unwrap_or(day);
            }
            let morning = NaiveTime::from_hms_opt(7, 0, 0).unwrap_or_default();
            reply =
                day.and_time(morning).and_utc() + TimeDelta::minutes(self.rng.random_range(0..90));
        }
        reply
    }

    /// What happens in one conversation, with times.
    fn script(
        &mut self,
        channel: Channel,
        unknown: bool,
        start: DateTime<Utc>,
    ) -> Vec<(DateTime<Utc>, Action)> {
        let mut actions = vec![(start, Action::Inbound)];
        let mut t = start;
        if channel == Channel::Chat {
            t += TimeDelta::seconds(self.rng.random_range(5..40));
            actions.push((t, Action::BotReply));
            if self.rng.random_bool(0.3) {
                t += TimeDelta::seconds(self.rng.random_range(60..400));
                actions.push((t, Action::BotClose));
                return actions;
            }
            t += TimeDelta::seconds(self.rng.random_range(30..200));
            actions.push((t, Action::Inbound));
            t += TimeDelta::seconds(self.rng.random_range(5..30));
            actions.push((t, Action::BotHandOff));
        }
        let reply_at = self.agent_delay(t);
        if self.rng.random_bool(0.15) {
            let at = t + (reply_at - t) / 2;
            actions.push((at, Action::Reassign));
        }
        if self.rng.random_bool(0.2) {
            actions.push((reply_at - TimeDelta::minutes(1), Action::Comment));
        }
        t = reply_at;
        actions.push((t, Action::Reply));
        if unknown
            && matches!(channel, Channel::Chat | Channel::Messenger)
            && self.rng.random_bool(0.5)
        {
            t += TimeDelta::minutes(2);
            actions.push((t, Action::RecordCreated));
        }
        if self.rng.random_bool(0.08) {
            t += TimeDelta::minutes(3);
            actions.push((t, Action::Ticket));
        }
        // A form submission always starts a conversation of its own, so form customers do not
        // write again through the form: the conversation can only be reopened by hand.
        let writes_again = channel != Channel::Form;
        let follow_ups = if writes_again {
            self.rng.random_range(0..3)
        } else {
            0
        };
        for _ in 0..follow_ups {
            t += TimeDelta::minutes(self.rng.random_range(10..1_440));
            actions.push((t, Action::Inbound));
            t = self.agent_delay(t);
            actions.push((t, Action::Reply));
        }
        if self.rng.random_bool(0.9) {
            t += TimeDelta::minutes(self.rng.random_range(5..1_440));
            actions.push((t, Action::Close));
            if writes_again && self.rng.random_bool(0.15) {
                // The customer writes again days later: the conversation reopens.
                t += TimeDelta::hours(self.rng.random_range(12..120));
                actions.push((t, Action::Inbound));
                t = self.agent_delay(t);
                actions.push((t, Action::Reply));
                if self.rng.random_bool(0.8) {
                    t += TimeDelta::minutes(self.rng.random_range(5..600));
                    actions.push((t, Action::Close));
                }
            } else if self.rng.random_bool(0.04) {
                t += TimeDelta::hours(self.rng.random_range(1..48));
                actions.push((t, Action::Reopen));
                t = self.agent_delay(t);
                actions.push((t, Action::Reply));
                t += TimeDelta::minutes(self.rng.random_range(5..300));
                actions.push((t, Action::Close));
            }
        }
        actions
    }

    fn channel_id(&self, channel: Channel) -> Uuid {
        let o = &self.org;
        match channel {
            Channel::SupportEmail => o.support_email,
            Channel::Chat => o.chat,
            Channel::Messenger => o.messenger,
            Channel::Form => o.form,
            Channel::SalesEmail => o.sales_email,
            Channel::Private => o.private_email,
            // The Billing inbox has no team e-mail: its fallback address, derived from the inbox.
            Channel::Billing => Uuid::nil(),
        }
    }

    /// The Billing inbox's fallback channel, as the directory knows it.
    async fn fallback_channel(&self) -> anyhow::Result<(Uuid, String)> {
        let view = self.service.view().await?;
        view.directory
            .fallback_address(self.org.billing)
            .map(|c| {
                let address = match &c.config {
                    proto_events::event::ChannelConfig::Email { address, .. } => address.clone(),
                    _ => String::new(),
                };
                (c.id, address)
            })
            .context("the Billing inbox has no fallback address")
    }

    async fn act(&mut self, thread: &mut Thread, action: Action) -> anyhow::Result<()> {
        // Every action but the first needs the conversation.
        let conversation = match (action, thread.conversation) {
            (Action::Inbound, _) => None,
            (_, Some(c)) => Some(c),
            (_, None) => return Ok(()),
        };
        match action {
            Action::Inbound => {
                let outcome = self.inbound(thread).await?;
                if let Some(outcome) = outcome
                    && thread.conversation.is_none()
                {
                    thread.conversation = outcome
                        .stream
                        .strip_prefix("conversation-")
                        .and_then(|id| id.parse().ok());
                }
                self.settle().await?;
            }
            Action::BotReply => {
                let c = conversation.unwrap_or_default();
                let bot = self.org.bot;
                self.reply_as(Actor::Bot { id: bot }, c, thread, true)
                    .await?;
            }
            Action::BotHandOff => {
                let c = conversation.unwrap_or_default();
                let bot = self.org.bot;
                self.conversation(
                    Actor::Bot { id: bot },
                    c,
                    ConversationCommand::HandOffFromBot { to: None },
                )
                .await?;
                self.settle().await?;
            }
            Action::BotClose => {
                let c = conversation.unwrap_or_default();
                let bot = self.org.bot;
                self.conversation(Actor::Bot { id: bot }, c, ConversationCommand::Close)
                    .await?;
                self.settle().await?;
            }
            Action::Reply => {
                let c = conversation.unwrap_or_default();
                let agent = self.agent_for(c, thread.channel).await?;
                self.reply_as(user(agent), c, thread, false).await?;
            }
            Action::Comment => {
                let c = conversation.unwrap_or_default();
                let author = self.agent_for(c, thread.channel).await?;
                let colleagues: Vec<Uuid> = if thread.channel == Channel::Private {
                    vec![self.org.users[0].id]
                } else {
                    self.org
                        .pool(thread.channel)
                        .into_iter()
                        .filter(|u| *u != author)
                        .collect()
                };
                let mentioned = colleagues[self.rng.random_range(0..colleagues.len())];
                let name = self
                    .org
                    .users
                    .iter()
                    .find(|u| u.id == mentioned)
                    .map_or("there", |u| u.name);
                let first = name.split(' ').next().unwrap_or(name);
                let text = COMMENTS[self.rng.random_range(0..COMMENTS.len())];
                let comment_id = id(&format!("comment:{}:{}", thread.index, self.commands));
                self.conversation(
                    user(author),
                    c,
                    ConversationCommand::AddComment {
                        comment_id,
                        body_text: format!("@{first} {text}"),
                        mentions: vec![mentioned],
                    },
                )
                .await?;
            }
            Action::Reassign => {
                let c = conversation.unwrap_or_default();
                let current = self.assignee(c).await?;
                let pool: Vec<Uuid> = self
                    .org
                    .pool(thread.channel)
                    .into_iter()
                    .filter(|u| Some(*u) != current)
                    .collect();
                if let Some(&to) = pool.get(self.rng.random_range(0..pool.len().max(1))) {
                    let by = current.unwrap_or(self.org.user("kai").id);
                    self.conversation(
                        user(by),
                        c,
                        ConversationCommand::Assign {
                            to: Assignee::User { id: to },
                        },
                    )
                    .await?;
                    self.settle().await?;
                }
            }
            Action::Close => {
                let c = conversation.unwrap_or_default();
                let agent = self.agent_for(c, thread.channel).await?;
                self.conversation(user(agent), c, ConversationCommand::Close)
                    .await?;
                self.settle().await?;
            }
            Action::Reopen => {
                let c = conversation.unwrap_or_default();
                let agent = self.agent_for(c, thread.channel).await?;
                self.conversation(user(agent), c, ConversationCommand::Reopen)
                    .await?;
                self.settle().await?;
            }
            Action::Ticket => {
                let c = conversation.unwrap_or_default();
                let agent = self.agent_for(c, thread.channel).await?;
                let (subject, _) = thread.channel.topics()[thread.topic];
                self.run(
                    user(agent),
                    Command::CreateTicket {
                        ticket_id: id(&format!("ticket:{}", thread.index)),
                        subject: subject.into(),
                        conversation_id: Some(c),
                    },
                )
                .await?;
            }
            Action::RecordCreated => {
                let c = conversation.unwrap_or_default();
                let agent = self.agent_for(c, thread.channel).await?;
                let identity = self.visitor_identity(thread);
                let first = FIRST_NAMES[thread.index % FIRST_NAMES.len()];
                let mut properties = BTreeMap::new();
                properties.insert("first_name".to_owned(), first.to_owned());
                properties.insert("source".to_owned(), "chat".to_owned());
                self.run(
                    user(agent),
                    Command::CreateContact {
                        contact_id: id(&format!("visitor-contact:{}", thread.index)),
                        identities: vec![identity],
                        properties,
                        from_conversation: Some(c),
                    },
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn conversation(
        &mut self,
        actor: Actor,
        conversation_id: Uuid,
        command: ConversationCommand,
    ) -> anyhow::Result<Option<Outcome>> {
        self.run(
            actor,
            Command::Conversation {
                conversation_id,
                command: Box::new(command),
            },
        )
        .await
    }

    /// The conversation as its stream tells.
    async fn state(&self, conversation_id: Uuid) -> anyhow::Result<Conversation> {
        let stream = proto_events::streams::conversation(conversation_id);
        let recorded = self
            .store
            .read_stream(&stream, Direction::Forwards, StreamFrom::Start, 10_000)
            .await?;
        let events = recorded
            .iter()
            .map(|r| switchboard_codec::decode(r).map(|e| e.payload))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Conversation::from_history(&events))
    }

    async fn assignee(&self, conversation_id: Uuid) -> anyhow::Result<Option<Uuid>> {
        Ok(match self.state(conversation_id).await?.assignee {
            Some(Assignee::User { id }) => Some(id),
            _ => None,
        })
    }

    /// The agent who acts on a conversation: its assignee, or else someone from the inbox's
    /// pool, who takes it first (an agent picking up an unassigned conversation).
    async fn agent_for(&mut self, conversation_id: Uuid, channel: Channel) -> anyhow::Result<Uuid> {
        let state = self.state(conversation_id).await?;
        if let Some(Assignee::User { id }) = state.assignee {
            return Ok(id);
        }
        let pool = self.org.pool(channel);
        let agent = pool[self.rng.random_range(0..pool.len())];
        if state.status == Status::Open {
            self.conversation(
                user(agent),
                conversation_id,
                ConversationCommand::Assign {
                    to: Assignee::User { id: agent },
                },
            )
            .await?;
            self.settle().await?;
        }
        Ok(agent)
    }

    async fn reply_as(
        &mut self,
        actor: Actor,
        conversation_id: Uuid,
        thread: &mut Thread,
        bot: bool,
    ) -> anyhow::Result<()> {
        thread.replies += 1;
        let message_id = id(&format!("reply:{}:{}", thread.index, thread.replies));
        let body = if bot {
            "Hi! I'm Sunny, Northwind's assistant. Have you checked our help centre at \
             help.northwind.example? If not, I'll get a colleague for you."
                .to_owned()
        } else {
            REPLIES[self.rng.random_range(0..REPLIES.len())].to_owned()
        };
        let sent = self
            .conversation(
                actor,
                conversation_id,
                ConversationCommand::SendReply {
                    message_id,
                    body_text: body,
                    body_html: None,
                    subject: None,
                    attachments: Vec::new(),
                },
            )
            .await?;
        if sent.is_some() && thread.channel.is_email() {
            let channel_id = match thread.channel {
                Channel::Billing => self.fallback_channel().await?.0,
                c => self.channel_id(c),
            };
            self.clock.advance(TimeDelta::seconds(2));
            let outcome = if self.rng.random_bool(0.02) {
                DeliveryOutcome::Failed {
                    reason: "550 5.1.1 mailbox unavailable".into(),
                    permanent: true,
                    status: None,
                }
            } else {
                DeliveryOutcome::Succeeded {
                    provider_message_id: Some(format!("<{message_id}@mail.northwind.example>")),
                }
            };
            self.conversation(
                Actor::Channel { id: channel_id },
                conversation_id,
                ConversationCommand::RecordDelivery {
                    message_id,
                    outcome,
                },
            )
            .await?;
        }
        Ok(())
    }

    fn visitor_identity(&self, thread: &Thread) -> Identity {
        match thread.channel {
            Channel::Chat => Identity::ChatVisitor {
                visitor_id: format!("visitor-{:04}", thread.index),
            },
            Channel::Messenger => Identity::Messenger {
                psid: format!("{}", 7_300_000_000u64 + thread.index as u64),
            },
            _ => Identity::Email {
                address: format!("guest{:04}@mail.example", thread.index),
            },
        }
    }

    /// The customer's next message in `thread`.
    async fn inbound(&mut self, thread: &mut Thread) -> anyhow::Result<Option<Outcome>> {
        thread.inbound += 1;
        let n = thread.inbound;
        let (channel_id, to_address) = match thread.channel {
            Channel::Billing => self.fallback_channel().await?,
            Channel::SupportEmail => (self.org.support_email, SUPPORT_ADDRESS.into()),
            Channel::SalesEmail => (self.org.sales_email, "sales@northwind.example".into()),
            Channel::Private => (
                self.org.private_email,
                "lucas.meyer@northwind.example".into(),
            ),
            c => (self.channel_id(c), String::new()),
        };
        let (subject, opening) = thread.channel.topics()[thread.topic];
        let body = match (n, thread.channel) {
            (1, _) => opening.to_owned(),
            (2, Channel::Chat) if thread.replies == 1 => {
                "No, that didn't help. Can I talk to a person, please?".to_owned()
            }
            _ => FOLLOW_UPS[self.rng.random_range(0..FOLLOW_UPS.len())].to_owned(),
        };
        let (from, from_name) = match thread.customer {
            Some(c) if !matches!(thread.channel, Channel::Chat | Channel::Messenger) => {
                let (_, name, email, _) = &self.org.customers[c];
                (
                    Identity::Email {
                        address: email.clone(),
                    },
                    Some(name.clone()),
                )
            }
            _ => (
                self.visitor_identity(thread),
                Some(format!(
                    "{} {}",
                    FIRST_NAMES[thread.index % FIRST_NAMES.len()],
                    LAST_NAMES[thread.index % LAST_NAMES.len()]
                )),
            ),
        };
        let root = format!("<t{:04}.1@mail.customer.example>", thread.index);
        let email = thread.channel.is_email().then(|| EmailHeaders {
            message_id: format!("<t{:04}.{n}@mail.customer.example>", thread.index),
            in_reply_to: (n > 1).then(|| root.clone()),
            references: if n > 1 {
                vec![root.clone()]
            } else {
                Vec::new()
            },
            to: vec![to_address],
            cc: Vec::new(),
        });
        let form_fields = if thread.channel == Channel::Form {
            vec![
                FormField {
                    name: "name".into(),
                    value: from_name.clone().unwrap_or_default(),
                },
                FormField {
                    name: "quantity".into(),
                    value: format!("{}", 5 + thread.index % 40),
                },
            ]
        } else {
            Vec::new()
        };
        let kind = match thread.channel {
            Channel::Chat => ChannelKind::Chat,
            Channel::Messenger => ChannelKind::Messenger,
            Channel::Form => ChannelKind::Form,
            _ => ChannelKind::Email,
        };
        let signals = thread.channel.is_email().then(|| MailSignals {
            from: match &from {
                Identity::Email { address } => address.clone(),
                _ => String::new(),
            },
            ..MailSignals::default()
        });
        let message = InboundMessage {
            message_id: id(&format!("inbound:{}:{n}", thread.index)),
            channel_id,
            channel_kind: kind,
            provider_message_id: (thread.channel == Channel::Messenger)
                .then(|| format!("m_{}_{n}", thread.index)),
            from,
            from_name,
            contact_id: None,
            subject: (thread.channel.is_email() || thread.channel == Channel::Form).then(|| {
                if n > 1 {
                    format!("Re: {subject}")
                } else {
                    subject.to_owned()
                }
            }),
            body_text: body,
            body_html: None,
            email,
            form_fields,
            attachments: Vec::new(),
            raw: None,
        };
        self.run(
            Actor::Channel { id: channel_id },
            Command::ReceiveMessage {
                channel_id,
                message: Box::new(message),
                signals,
            },
        )
        .await
    }

    /// A newsletter or an offer to support@ that the filters move to Filtered.
    async fn newsletter(&mut self, n: usize) -> anyhow::Result<()> {
        let channel_id = self.org.support_email;
        let (address, subject, unsubscribe) = if n.is_multiple_of(3) {
            (
                "deals@cheap-offers.example",
                "Unbeatable prices on tents!!!",
                false,
            )
        } else {
            (
                "newsletter@gear-weekly.example",
                "Gear Weekly: this week's top picks",
                true,
            )
        };
        let message = InboundMessage {
            message_id: id(&format!("newsletter:{n}")),
            channel_id,
            channel_kind: ChannelKind::Email,
            provider_message_id: None,
            from: Identity::Email {
                address: address.into(),
            },
            from_name: None,
            contact_id: None,
            subject: Some(subject.into()),
            body_text: "View this e-mail in your browser.".into(),
            body_html: None,
            email: Some(EmailHeaders {
                message_id: format!("<news{n}@{}>", address.split('@').nth(1).unwrap_or("x")),
                in_reply_to: None,
                references: Vec::new(),
                to: vec![SUPPORT_ADDRESS.into()],
                cc: Vec::new(),
            }),
            form_fields: Vec::new(),
            attachments: Vec::new(),
            raw: None,
        };
        self.run(
            Actor::Channel { id: channel_id },
            Command::ReceiveMessage {
                channel_id,
                message: Box::new(message),
                signals: Some(MailSignals {
                    from: address.into(),
                    list_unsubscribe: unsubscribe,
                    precedence: unsubscribe.then(|| "bulk".to_owned()),
                    ..MailSignals::default()
                }),
            },
        )
        .await?;
        self.settle().await
    }
}

fn interval(day: Weekday, opens: u32, closes: u32) -> OpeningInterval {
    OpeningInterval {
        day,
        opens: NaiveTime::from_hms_opt(opens, 0, 0).unwrap_or_default(),
        closes: NaiveTime::from_hms_opt(closes, 0, 0).unwrap_or_default(),
    }
}

fn record(kind: RecordKind, id: Uuid) -> RecordRef {
    RecordRef { kind, id }
}

/// The super admin's id and e-mail, if the directory has the demo's admin.
pub async fn admin(service: &CommandService) -> anyhow::Result<Option<(Uuid, String)>> {
    let view = service.view().await?;
    Ok(view
        .directory
        .user_by_email(ADMIN_EMAIL)
        .map(|u| (u.id, u.email.clone())))
}
