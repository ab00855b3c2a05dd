//! The table the benchmarks print: one row per figure, grouped by section.

pub struct Table {
    rows: Vec<(String, String, String)>,
}

impl Table {
    pub fn new() -> Self {
        Self { rows: Vec::new() }
    }

    pub fn row(&mut self, section: &str, what: &str, value: String) {
        println!("  {section:<12} {what:<48} {value}");
        self.rows.push((section.to_owned(), what.to_owned(), value));
    }

    /// The value of a row already in the table, for a section that sets
    /// another section's figures beside its own.
    pub fn value(&self, section: &str, what: &str) -> Option<&str> {
        self.rows
            .iter()
            .find(|(s, w, _)| s == section && w == what)
            .map(|(_, _, value)| value.as_str())
    }

    /// The whole table as Markdown, for BENCHMARKS.md.
    pub fn markdown(&self) -> String {
        let mut out = String::from("| section | measure | value |\n|---|---|---|\n");
        for (section, what, value) in &self.rows {
            out.push_str(&format!("| {section} | {what} | {value} |\n"));
        }
        out
    }
}
