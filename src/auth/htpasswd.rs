//! Interim htpasswd reader (replaced by the full module on merge).

pub struct Entry {
    pub user: String,
    pub hash: String,
}

pub struct Problem {
    pub line: usize,
    pub user: String,
    pub message: String,
}

pub fn parse(text: &str) -> (Vec<Entry>, Vec<Problem>) {
    let mut entries: Vec<Entry> = vec![];
    let mut problems = vec![];
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (user, hash) = line.split_once(':').unwrap_or((line, ""));
        if bcrypt_cost(hash).is_some() && !entries.iter().any(|e| e.user == user) {
            entries.push(Entry {
                user: user.into(),
                hash: hash.into(),
            });
        } else {
            problems.push(Problem {
                line: i + 1,
                user: user.into(),
                message: "not a bcrypt hash".into(),
            });
        }
    }
    (entries, problems)
}

pub fn verify(hash: &str, password: &str) -> bool {
    bcrypt::verify(password, hash).unwrap_or(false)
}

pub fn bcrypt_cost(hash: &str) -> Option<u32> {
    let rest = ["$2y$", "$2a$", "$2b$"]
        .iter()
        .find_map(|p| hash.strip_prefix(p))?;
    let (cost, tail) = rest.split_once('$')?;
    (cost.len() == 2 && tail.len() == 53)
        .then(|| cost.parse().ok())
        .flatten()
}
