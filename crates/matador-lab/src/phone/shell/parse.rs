//! A POSIX shell-word parser for the simulated `/system/bin/sh` (mksh).
//!
//! It covers what a phone's shell sees from ADB clients: single and double
//! quotes, backslash escapes, `$VAR`/`${VAR}`/`$?`, command substitution
//! (`$(…)` and backticks), `;`, `&`, `&&`, `||`, `|`, `!`, comments and simple
//! redirections. Parsing never runs anything; substitutions are kept as parsed
//! sub-scripts that the interpreter runs against the *simulated* phone only.

use std::fmt;

/// A parse error with the byte offset it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syntax error at offset {offset}: {message}")]
pub struct ParseError {
    /// Character offset in the command line.
    pub offset: usize,
    /// What went wrong, in mksh's words where possible.
    pub message: String,
}

/// One piece of a word.
#[derive(Debug, Clone, PartialEq)]
pub enum Seg {
    /// Literal text; `quoted` literals are never field-split or globbed.
    Lit {
        /// The text.
        text: String,
        /// Whether it came from quotes or escapes.
        quoted: bool,
    },
    /// A parameter expansion (`$x`, `${x}`, `$?`, `$1`, `$#`, `$$`).
    Param {
        /// Parameter name.
        name: String,
        /// Inside double quotes (no field splitting).
        quoted: bool,
    },
    /// A command substitution.
    Subst {
        /// The parsed inner script.
        script: Box<Script>,
        /// Inside double quotes (no field splitting).
        quoted: bool,
    },
}

/// A word: the concatenation of its segments.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Word(pub Vec<Seg>);

impl Word {
    /// The word's text if it has no expansions (used for keywords, names).
    pub fn literal(&self) -> Option<String> {
        let mut s = String::new();
        for seg in &self.0 {
            match seg {
                Seg::Lit { text, .. } => s.push_str(text),
                _ => return None,
            }
        }
        Some(s)
    }

    fn is_unquoted_literal(&self) -> Option<String> {
        let mut s = String::new();
        for seg in &self.0 {
            match seg {
                Seg::Lit {
                    text,
                    quoted: false,
                } => s.push_str(text),
                _ => return None,
            }
        }
        Some(s)
    }
}

/// Redirection operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirOp {
    /// `>`
    Out,
    /// `>>`
    Append,
    /// `<`
    In,
    /// `>&N`
    Dup,
}

/// A redirection such as `2>/dev/null` or `2>&1`.
#[derive(Debug, Clone, PartialEq)]
pub struct Redir {
    /// File descriptor redirected.
    pub fd: u32,
    /// Operator.
    pub op: RedirOp,
    /// Target file (or fd number for `Dup`).
    pub target: Word,
}

/// A simple command: assignments, words, redirections.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Simple {
    /// `NAME=value` prefixes.
    pub assigns: Vec<(String, Word)>,
    /// Command name and arguments.
    pub words: Vec<Word>,
    /// Redirections.
    pub redirs: Vec<Redir>,
}

/// Commands joined by `|`, optionally negated with `!`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pipeline {
    /// `!` prefix.
    pub negate: bool,
    /// The commands.
    pub cmds: Vec<Simple>,
}

/// `&&` / `||`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AndOrOp {
    /// `&&`
    And,
    /// `||`
    Or,
}

/// Pipelines joined by `&&` and `||`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AndOr {
    /// First pipeline.
    pub first: Pipeline,
    /// Following pipelines with their operator.
    pub rest: Vec<(AndOrOp, Pipeline)>,
}

/// A list of and-or lists separated by `;`, `&` or newlines.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Script(pub Vec<AndOr>);

impl fmt::Display for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<script of {} lists>", self.0.len())
    }
}

/// Parses a full command line.
pub fn parse(src: &str) -> Result<Script, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let mut p = Parser { c: chars, i: 0 };
    let script = p.list(None)?;
    if p.i < p.c.len() {
        return Err(p.err(format!("'{}' unexpected", p.c[p.i])));
    }
    Ok(script)
}

struct Parser {
    c: Vec<char>,
    i: usize,
}

const RESERVED: &[&str] = &[
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac", "{",
    "}", "function", "select",
];

impl Parser {
    fn err(&self, message: String) -> ParseError {
        ParseError {
            offset: self.i,
            message,
        }
    }

    fn peek(&self) -> Option<char> {
        self.c.get(self.i).copied()
    }

    fn peek2(&self) -> Option<char> {
        self.c.get(self.i + 1).copied()
    }

    /// Skips blanks, line continuations and comments (not newlines).
    fn blanks(&mut self) {
        loop {
            match self.peek() {
                Some(' ' | '\t') => self.i += 1,
                Some('\\') if self.peek2() == Some('\n') => self.i += 2,
                Some('#') => {
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.i += 1;
                    }
                }
                _ => return,
            }
        }
    }

    /// list := and_or ((';' | '&' | '\n') and_or)*, up to `end` or EOF.
    fn list(&mut self, end: Option<char>) -> Result<Script, ParseError> {
        let mut items = Vec::new();
        loop {
            self.blanks();
            match self.peek() {
                None => {
                    if end.is_some() {
                        return Err(self.err("')' expected".into()));
                    }
                    break;
                }
                Some(c) if Some(c) == end => break,
                Some('\n') => {
                    self.i += 1;
                    continue;
                }
                Some(';') if self.peek2() != Some(';') => {
                    if items.is_empty() {
                        return Err(self.err("';' unexpected".into()));
                    }
                    return Err(self.err("';' unexpected".into()));
                }
                _ => {}
            }
            items.push(self.and_or(end)?);
            self.blanks();
            match self.peek() {
                Some(';') => {
                    if self.peek2() == Some(';') {
                        return Err(self.err("';;' unexpected".into()));
                    }
                    self.i += 1;
                }
                Some('&') => self.i += 1,
                Some('\n') => self.i += 1,
                None => {}
                Some(c) if Some(c) == end => {}
                Some(c) => return Err(self.err(format!("'{c}' unexpected"))),
            }
        }
        Ok(Script(items))
    }

    fn and_or(&mut self, end: Option<char>) -> Result<AndOr, ParseError> {
        let first = self.pipeline(end)?;
        let mut rest = Vec::new();
        loop {
            self.blanks();
            let op = match (self.peek(), self.peek2()) {
                (Some('&'), Some('&')) => AndOrOp::And,
                (Some('|'), Some('|')) => AndOrOp::Or,
                _ => break,
            };
            self.i += 2;
            // A newline may follow && / ||.
            loop {
                self.blanks();
                if self.peek() == Some('\n') {
                    self.i += 1;
                } else {
                    break;
                }
            }
            rest.push((op, self.pipeline(end)?));
        }
        Ok(AndOr { first, rest })
    }

    fn pipeline(&mut self, end: Option<char>) -> Result<Pipeline, ParseError> {
        self.blanks();
        let mut negate = false;
        if self.peek() == Some('!') && matches!(self.peek2(), Some(' ' | '\t')) {
            negate = true;
            self.i += 1;
        }
        let mut cmds = vec![self.simple(end)?];
        loop {
            self.blanks();
            if self.peek() == Some('|') && self.peek2() != Some('|') {
                self.i += 1;
                loop {
                    self.blanks();
                    if self.peek() == Some('\n') {
                        self.i += 1;
                    } else {
                        break;
                    }
                }
                cmds.push(self.simple(end)?);
            } else {
                break;
            }
        }
        Ok(Pipeline { negate, cmds })
    }

    fn at_operator(&self, end: Option<char>) -> bool {
        match self.peek() {
            None => true,
            Some(c) => matches!(c, ';' | '&' | '|' | '\n' | '(' | ')') || Some(c) == end,
        }
    }

    fn simple(&mut self, end: Option<char>) -> Result<Simple, ParseError> {
        let mut cmd = Simple::default();
        loop {
            self.blanks();
            if self.at_operator(end) {
                if let Some('(' | ')') = self.peek()
                    && (Some(')') != end || self.peek() == Some('('))
                {
                    return Err(self.err(format!("'{}' unexpected", self.peek().unwrap_or(' '))));
                }
                break;
            }
            // Redirection: optional fd digits then < or >.
            let save = self.i;
            let mut fd = String::new();
            while let Some(c) = self.peek() {
                if c.is_ascii_digit() {
                    fd.push(c);
                    self.i += 1;
                } else {
                    break;
                }
            }
            if let Some(op_c @ ('<' | '>')) = self.peek() {
                self.i += 1;
                let mut op = if op_c == '<' {
                    RedirOp::In
                } else {
                    RedirOp::Out
                };
                if op_c == '>' && self.peek() == Some('>') {
                    self.i += 1;
                    op = RedirOp::Append;
                } else if self.peek() == Some('&') {
                    self.i += 1;
                    op = RedirOp::Dup;
                }
                let fd_num = if fd.is_empty() {
                    u32::from(op_c == '>')
                } else {
                    fd.parse()
                        .map_err(|_| self.err("bad file descriptor".into()))?
                };
                self.blanks();
                if self.at_operator(end) {
                    return Err(self.err("redirection target expected".into()));
                }
                let target = self.word(end)?;
                cmd.redirs.push(Redir {
                    fd: fd_num,
                    op,
                    target,
                });
                continue;
            }
            self.i = save;
            let word = self.word(end)?;
            if cmd.words.is_empty() {
                if let Some(lit) = word.is_unquoted_literal() {
                    if let Some((name, _)) = lit.split_once('=')
                        && is_name(name)
                    {
                        let value = strip_prefix_segments(&word, name.len() + 1);
                        cmd.assigns.push((name.to_string(), value));
                        continue;
                    }
                    if RESERVED.contains(&lit.as_str()) {
                        return Err(self.err(format!("'{lit}' unexpected")));
                    }
                } else if let Some(Seg::Lit {
                    text,
                    quoted: false,
                }) = word.0.first()
                    && let Some((name, _)) = text.split_once('=')
                    && is_name(name)
                {
                    let value = strip_prefix_segments(&word, name.len() + 1);
                    cmd.assigns.push((name.to_string(), value));
                    continue;
                }
            }
            cmd.words.push(word);
        }
        if cmd.words.is_empty() && cmd.assigns.is_empty() && cmd.redirs.is_empty() {
            return Err(self.err(match self.peek() {
                None => "unexpected end of command".into(),
                Some(c) => format!("'{c}' unexpected"),
            }));
        }
        Ok(cmd)
    }

    fn push_lit(segs: &mut Vec<Seg>, c: char, quoted: bool) {
        if let Some(Seg::Lit { text, quoted: q }) = segs.last_mut()
            && *q == quoted
        {
            text.push(c);
            return;
        }
        segs.push(Seg::Lit {
            text: c.to_string(),
            quoted,
        });
    }

    fn word(&mut self, end: Option<char>) -> Result<Word, ParseError> {
        let mut segs = Vec::new();
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' | '\n' | ';' | '&' | '|' | '<' | '>' | '(' | ')' => break,
                _ if Some(c) == end => break,
                '\\' => {
                    self.i += 1;
                    match self.peek() {
                        None => Self::push_lit(&mut segs, '\\', true),
                        Some('\n') => self.i += 1,
                        Some(n) => {
                            self.i += 1;
                            Self::push_lit(&mut segs, n, true);
                        }
                    }
                }
                '\'' => {
                    self.i += 1;
                    let start = self.i;
                    loop {
                        match self.peek() {
                            None => {
                                self.i = start - 1;
                                return Err(self.err("no closing quote".into()));
                            }
                            Some('\'') => break,
                            Some(_) => self.i += 1,
                        }
                    }
                    let text: String = self.c[start..self.i].iter().collect();
                    self.i += 1;
                    segs.push(Seg::Lit { text, quoted: true });
                }
                '"' => {
                    let open = self.i;
                    self.i += 1;
                    // An empty "" still makes a (quoted, empty) segment.
                    segs.push(Seg::Lit {
                        text: String::new(),
                        quoted: true,
                    });
                    loop {
                        match self.peek() {
                            None => {
                                self.i = open;
                                return Err(self.err("no closing quote".into()));
                            }
                            Some('"') => {
                                self.i += 1;
                                break;
                            }
                            Some('\\') => {
                                self.i += 1;
                                match self.peek() {
                                    Some(n @ ('$' | '`' | '"' | '\\')) => {
                                        self.i += 1;
                                        Self::push_lit(&mut segs, n, true);
                                    }
                                    Some('\n') => self.i += 1,
                                    _ => Self::push_lit(&mut segs, '\\', true),
                                }
                            }
                            Some('$') => self.dollar(&mut segs, true)?,
                            Some('`') => self.backtick(&mut segs, true)?,
                            Some(n) => {
                                self.i += 1;
                                Self::push_lit(&mut segs, n, true);
                            }
                        }
                    }
                }
                '$' => self.dollar(&mut segs, false)?,
                '`' => self.backtick(&mut segs, false)?,
                _ => {
                    self.i += 1;
                    Self::push_lit(&mut segs, c, false);
                }
            }
        }
        Ok(Word(segs))
    }

    fn dollar(&mut self, segs: &mut Vec<Seg>, quoted: bool) -> Result<(), ParseError> {
        self.i += 1; // '$'
        match self.peek() {
            Some('(') => {
                if self.peek2() == Some('(') {
                    return Err(self.err("arithmetic expansion is not supported".into()));
                }
                self.i += 1;
                let script = self.list(Some(')'))?;
                if self.peek() != Some(')') {
                    return Err(self.err("')' expected".into()));
                }
                self.i += 1;
                segs.push(Seg::Subst {
                    script: Box::new(script),
                    quoted,
                });
            }
            Some('{') => {
                self.i += 1;
                let start = self.i;
                while let Some(c) = self.peek() {
                    if c == '}' {
                        break;
                    }
                    self.i += 1;
                }
                if self.peek() != Some('}') {
                    return Err(self.err("missing '}'".into()));
                }
                let name: String = self.c[start..self.i].iter().collect();
                self.i += 1;
                if !(is_name(&name) || is_special(&name)) {
                    return Err(self.err(format!("${{{name}}}: bad substitution")));
                }
                segs.push(Seg::Param { name, quoted });
            }
            Some(c)
                if c == '?'
                    || c == '#'
                    || c == '$'
                    || c == '!'
                    || c == '@'
                    || c == '*'
                    || c.is_ascii_digit() =>
            {
                self.i += 1;
                segs.push(Seg::Param {
                    name: c.to_string(),
                    quoted,
                });
            }
            Some(c) if c == '_' || c.is_ascii_alphabetic() => {
                let start = self.i;
                while let Some(c) = self.peek() {
                    if c == '_' || c.is_ascii_alphanumeric() {
                        self.i += 1;
                    } else {
                        break;
                    }
                }
                segs.push(Seg::Param {
                    name: self.c[start..self.i].iter().collect(),
                    quoted,
                });
            }
            _ => Self::push_lit(segs, '$', quoted),
        }
        Ok(())
    }

    fn backtick(&mut self, segs: &mut Vec<Seg>, quoted: bool) -> Result<(), ParseError> {
        let open = self.i;
        self.i += 1;
        let mut inner = String::new();
        loop {
            match self.peek() {
                None => {
                    self.i = open;
                    return Err(self.err("no closing quote".into()));
                }
                Some('`') => {
                    self.i += 1;
                    break;
                }
                Some('\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(n @ ('$' | '`' | '\\')) => {
                            self.i += 1;
                            inner.push(n);
                        }
                        _ => inner.push('\\'),
                    }
                }
                Some(c) => {
                    self.i += 1;
                    inner.push(c);
                }
            }
        }
        let script = parse(&inner).map_err(|e| ParseError {
            offset: open + 1 + e.offset,
            message: e.message,
        })?;
        segs.push(Seg::Subst {
            script: Box::new(script),
            quoted,
        });
        Ok(())
    }
}

fn strip_prefix_segments(word: &Word, chars: usize) -> Word {
    let mut left = chars;
    let mut out = Vec::new();
    for seg in &word.0 {
        if left == 0 {
            out.push(seg.clone());
            continue;
        }
        if let Seg::Lit { text, quoted } = seg {
            let n = text.chars().count();
            if n <= left {
                left -= n;
            } else {
                out.push(Seg::Lit {
                    text: text.chars().skip(left).collect(),
                    quoted: *quoted,
                });
                left = 0;
            }
        }
    }
    // `x=` assigns the empty string.
    if out.is_empty() {
        out.push(Seg::Lit {
            text: String::new(),
            quoted: true,
        });
    }
    Word(out)
}

/// Whether `s` is a valid shell variable name.
pub fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

fn is_special(s: &str) -> bool {
    matches!(s, "?" | "#" | "$" | "!" | "@" | "*")
        || (!s.is_empty() && s.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lits(src: &str) -> Vec<String> {
        let s = parse(src).unwrap();
        s.0[0].first.cmds[0]
            .words
            .iter()
            .map(|w| w.literal().unwrap())
            .collect()
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(
            lits(r#"echo 'a b' "c d" e\ f"#),
            ["echo", "a b", "c d", "e f"]
        );
        assert_eq!(
            lits(r#"echo 'it'\''s' "\$x" "a\b""#),
            ["echo", "it's", "$x", "a\\b"]
        );
        assert_eq!(lits("echo ''"), ["echo", ""]);
    }

    #[test]
    fn lists_and_substitutions() {
        let s = parse("a; b && c || d | e & f").unwrap();
        assert_eq!(s.0.len(), 3);
        assert_eq!(s.0[1].rest.len(), 2);
        let s = parse("echo $(touch /x) `id` \"$(date)\"").unwrap();
        let words = &s.0[0].first.cmds[0].words;
        assert!(matches!(words[1].0[0], Seg::Subst { quoted: false, .. }));
        assert!(matches!(words[2].0[0], Seg::Subst { quoted: false, .. }));
        assert!(matches!(words[3].0[1], Seg::Subst { quoted: true, .. }));
        // Quoted, a substitution is plain text.
        assert_eq!(lits("echo '$(touch /x)'"), ["echo", "$(touch /x)"]);
    }

    #[test]
    fn errors_do_not_panic() {
        for bad in [
            "echo 'x", "echo \"x", "echo $(x", "a &&", "; a", "echo `x", "echo ${", "(a)",
            "if true",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    /// The product's quoting rule (what `matador` uses to build `adb shell`
    /// lines) reads back the same under the simulated shell.
    #[test]
    fn quote_round_trips() {
        use matador::device::shell_quote::quote;
        for s in ["", "a b", "it's", "$(x)", "`y`", "a\nb", "\\", "'''"] {
            assert_eq!(lits(&format!("echo {}", quote(s)))[1], s);
        }
    }
}
