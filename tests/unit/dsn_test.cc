// Unit tests of the shard connection string type (include/inventory/store/dsn.h):
// Redacted() hides the password in keyword=value form (plain, quoted, any
// case, any position) and in URI form (user info and ?password= parameter)
// and never lets the secret through; Endpoint() gives host:port/dbname for
// both forms; ParseDsnList() splits the --shards flag, trims entries and
// rejects empty lists and stray commas, and keeps multi-host strings and
// quoted values whole. The Redacted() cases marked "checked
// against libpq" are conninfo strings whose password libpq reads differently
// from a naive split on blanks (escapes, tabs, malformed entries, encoded
// keywords); the password must stay hidden in those too.
#include "inventory/store/dsn.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace inventory {
namespace {

// Expects Redacted() of `conninfo` to be exactly `want` and not to contain
// `secret` anywhere.
void ExpectRedacted(const std::string& conninfo, const std::string& want,
                    const std::string& secret) {
  SCOPED_TRACE("conninfo: " + conninfo);
  const Dsn dsn(conninfo);
  const std::string got = dsn.Redacted();
  EXPECT_EQ(got, want);
  if (!secret.empty()) {
    EXPECT_FALSE(absl::StrContains(got, secret))
        << "secret \"" << secret << "\" leaked in \"" << got << "\"";
  }
  // Redacting never changes what libpq gets.
  EXPECT_EQ(dsn.ForConnect(), conninfo);
}

// --- keyword=value form ----------------------------------------------------

TEST(DsnRedactedTest, KeywordPasswordAtEnd) {
  ExpectRedacted("host=db1 port=5432 dbname=inv user=app password=secret",
                 "host=db1 port=5432 dbname=inv user=app password=***",
                 "secret");
}

TEST(DsnRedactedTest, KeywordPasswordAtStart) {
  ExpectRedacted("password=secret host=db1 dbname=inv",
                 "password=*** host=db1 dbname=inv", "secret");
}

TEST(DsnRedactedTest, KeywordPasswordInMiddle) {
  ExpectRedacted("host=db1 password=secret dbname=inv",
                 "host=db1 password=*** dbname=inv", "secret");
}

TEST(DsnRedactedTest, KeywordPasswordAlone) {
  ExpectRedacted("password=secret", "password=***", "secret");
}

TEST(DsnRedactedTest, KeywordQuotedPasswordWithSpace) {
  ExpectRedacted("password='se cret'", "password=***", "se");
  ExpectRedacted("host=db1 password='se cret' dbname=inv",
                 "host=db1 password=*** dbname=inv", "cret");
}

TEST(DsnRedactedTest, KeywordQuotedPasswordWithEscapedQuote) {
  // libpq: inside quotes, \' is a quote and \\ a backslash.
  ExpectRedacted(R"(host=db1 password='it\'s se cret' dbname=inv)",
                 "host=db1 password=*** dbname=inv", "cret");
  ExpectRedacted(R"(password='a\\' host=db1)", "password=*** host=db1", "a\\");
}

TEST(DsnRedactedTest, KeywordPasswordUpperCase) {
  ExpectRedacted("PASSWORD=xyzzy host=db1", "PASSWORD=*** host=db1", "xyzzy");
  ExpectRedacted("host=db1 PassWord=xyzzy", "host=db1 PassWord=***", "xyzzy");
}

TEST(DsnRedactedTest, KeywordSpacesAroundEquals) {
  // libpq allows white space around '='.
  ExpectRedacted("host=db1 password = secret dbname=inv",
                 "host=db1 password = *** dbname=inv", "secret");
}

TEST(DsnRedactedTest, KeywordTabsAsSeparators) {
  ExpectRedacted("host=db1\tpassword=secret\tdbname=inv",
                 "host=db1\tpassword=***\tdbname=inv", "secret");
}

TEST(DsnRedactedTest, KeywordWithoutPasswordUnchanged) {
  ExpectRedacted("host=db1 port=5432 dbname=inv user=app",
                 "host=db1 port=5432 dbname=inv user=app", "");
  ExpectRedacted("", "", "");
  // "passfile" names a file, not a secret: left alone.
  ExpectRedacted("host=db1 passfile=/etc/pgpass",
                 "host=db1 passfile=/etc/pgpass", "");
}

// Expects Redacted() of `conninfo` to hide every part of the password
// (`secret_parts`) while keeping `kept` (the rest of the string) readable.
void ExpectHidden(const std::string& conninfo,
                  const std::vector<std::string>& secret_parts,
                  const std::vector<std::string>& kept) {
  SCOPED_TRACE("conninfo: " + conninfo);
  const std::string got = Dsn(conninfo).Redacted();
  for (const std::string& part : secret_parts) {
    EXPECT_FALSE(absl::StrContains(got, part))
        << "password part \"" << part << "\" leaked in \"" << got << "\"";
  }
  EXPECT_TRUE(absl::StrContains(got, "***")) << got;
  for (const std::string& k : kept) {
    EXPECT_TRUE(absl::StrContains(got, k)) << "lost \"" << k << "\": " << got;
  }
}

// The following cases were checked against libpq's own parser
// (PQconninfoParse, libpq 15): each sets the password shown as secret.

TEST(DsnRedactedTest, KeywordUnquotedPasswordWithEscapedSpace) {
  // libpq (conninfo_parse) also honours backslash escapes in an UNQUOTED
  // value: `password=se\ cret` is the password "se cret".
  ExpectHidden(R"(host=db1 password=se\ cret dbname=inv)", {"se", "cret"},
               {"host=db1", "dbname=inv"});
}

TEST(DsnRedactedTest, KeywordTabOrNewlineAfterEquals) {
  // libpq skips any white space after '=', not only blanks.
  ExpectHidden("host=db1 password=\tsecret dbname=inv", {"secret"},
               {"host=db1", "dbname=inv"});
  ExpectHidden("host=db1 password=\n'se cret'", {"se", "cret"},
               {"host=db1"});
  ExpectHidden("host=db1\npassword\t=\tsecret", {"secret"}, {"host=db1"});
}

TEST(DsnRedactedTest, KeywordMalformedEntryStillHidesPassword) {
  // libpq refuses this string ('missing "=" after "user"'), and a refused
  // DSN is exactly what gets logged (redacted) when the shard cannot be
  // reached: the password must not show then either.
  ExpectHidden("host=db1 user password=secret", {"secret"}, {"host=db1"});
}

// --- URI form ----------------------------------------------------------------

TEST(DsnRedactedTest, UriUserInfoPassword) {
  ExpectRedacted("postgresql://user:secret@host:5432/db",
                 "postgresql://user:***@host:5432/db", "secret");
  ExpectRedacted("postgres://user:secret@host/db",
                 "postgres://user:***@host/db", "secret");
}

TEST(DsnRedactedTest, UriUserInfoPasswordWithoutPath) {
  ExpectRedacted("postgresql://user:secret@host:5432",
                 "postgresql://user:***@host:5432", "secret");
  ExpectRedacted("postgresql://user:secret@host?sslmode=disable",
                 "postgresql://user:***@host?sslmode=disable", "secret");
}

TEST(DsnRedactedTest, UriEmptyUserAndIpv6Host) {
  ExpectRedacted("postgresql://:secret@host/db", "postgresql://:***@host/db",
                 "secret");
  ExpectRedacted("postgresql://user:secret@[::1]:5432/db",
                 "postgresql://user:***@[::1]:5432/db", "secret");
}

TEST(DsnRedactedTest, UriWithoutPasswordUnchanged) {
  ExpectRedacted("postgres://user@host/db", "postgres://user@host/db", "");
  ExpectRedacted("postgresql://host:5432/db", "postgresql://host:5432/db", "");
  ExpectRedacted("postgresql://host:5432/db?sslmode=disable",
                 "postgresql://host:5432/db?sslmode=disable", "");
}

TEST(DsnRedactedTest, UriPasswordQueryParameterFirst) {
  ExpectRedacted("postgresql://host/db?password=secret&sslmode=disable",
                 "postgresql://host/db?password=***&sslmode=disable",
                 "secret");
}

TEST(DsnRedactedTest, UriPasswordQueryParameterLast) {
  ExpectRedacted("postgresql://user@host/db?sslmode=disable&password=secret",
                 "postgresql://user@host/db?sslmode=disable&password=***",
                 "secret");
}

TEST(DsnRedactedTest, UriPasswordInBothPlaces) {
  ExpectRedacted(
      "postgresql://user:one@host/db?connect_timeout=3&password=two&x=y",
      "postgresql://user:***@host/db?connect_timeout=3&password=***&x=y",
      "one");
  EXPECT_FALSE(absl::StrContains(
      Dsn("postgresql://user:one@host/db?password=two").Redacted(), "two"));
}

TEST(DsnRedactedTest, UriMalformedPasswordWithSlashStillHidden) {
  // Not a valid URI (an unencoded '/' in the password), but what gets logged
  // when libpq refuses it must not show the secret either.
  ExpectHidden("postgresql://u:pa/ss@host/db", {"pa/ss", "ss@"}, {"host/db"});
}

TEST(DsnEndpointTest, UriMalformedPasswordWithSlashNotShown) {
  // Endpoint() is logged and returned by CheckShards: it reads the user info
  // the same way Redacted() does.
  EXPECT_EQ(Dsn("postgresql://u:pa/ss@host/db").Endpoint(), "host/db");
}

TEST(DsnEndpointTest, KeywordQuotedValueWithSpace) {
  EXPECT_EQ(Dsn("host='my host' dbname='in v' password='a b'").Endpoint(),
            "my host:5432/in v");
}

TEST(DsnRedactedTest, UriPercentEncodedPasswordKeyword) {
  // libpq percent-decodes query keywords as well as values
  // (conninfo_uri_parse_params), so "passwor%64" is the password parameter.
  ExpectHidden("postgresql://host/db?passwor%64=secret&sslmode=disable",
               {"secret"}, {"postgresql://host/db?", "sslmode=disable"});
}

// --- Endpoint ------------------------------------------------------------------

TEST(DsnEndpointTest, KeywordForm) {
  EXPECT_EQ(Dsn("host=db1 port=6432 dbname=inv user=app password=secret")
                .Endpoint(),
            "db1:6432/inv");
  EXPECT_EQ(Dsn("dbname=inv port=6432 host=db1").Endpoint(), "db1:6432/inv");
}

TEST(DsnEndpointTest, KeywordDefaults) {
  EXPECT_EQ(Dsn("dbname=inv").Endpoint(), "localhost:5432/inv");
  EXPECT_EQ(Dsn("hostaddr=10.0.0.1 dbname=inv").Endpoint(),
            "10.0.0.1:5432/inv");
  EXPECT_EQ(Dsn("host=db1").Endpoint(), "db1:5432/");
}

TEST(DsnEndpointTest, KeywordQuotedValuesAndCase) {
  EXPECT_EQ(Dsn("host='db1' port='6432' dbname='inv'").Endpoint(),
            "db1:6432/inv");
  EXPECT_EQ(Dsn("HOST=db1 DBNAME=inv").Endpoint(), "db1:5432/inv");
}

TEST(DsnEndpointTest, UriForm) {
  EXPECT_EQ(Dsn("postgresql://user:secret@host:5432/db").Endpoint(),
            "host:5432/db");
  EXPECT_EQ(Dsn("postgres://user@host/db").Endpoint(), "host/db");
  EXPECT_EQ(Dsn("postgresql://host:5432/db?password=secret&sslmode=disable")
                .Endpoint(),
            "host:5432/db");
  EXPECT_EQ(Dsn("postgresql://user:secret@host?sslmode=disable").Endpoint(),
            "host");
}

TEST(DsnEndpointTest, NeverShowsPassword) {
  for (const char* conninfo :
       {"host=db1 password=secret dbname=inv",
        "password='se cret' host=db1",
        "postgresql://user:secret@host:5432/db",
        "postgresql://host/db?password=secret",
        "postgresql://user:secret@host?password=secret"}) {
    EXPECT_FALSE(absl::StrContains(Dsn(conninfo).Endpoint(), "secret"))
        << conninfo << " -> " << Dsn(conninfo).Endpoint();
  }
}

// --- ParseDsnList --------------------------------------------------------------

TEST(ParseDsnListTest, EmptyOrWhitespaceIsInvalid) {
  for (const char* list : {"", " ", "   ", "\t", " \t\n "}) {
    absl::StatusOr<std::vector<Dsn>> dsns = ParseDsnList(list);
    ASSERT_FALSE(dsns.ok()) << "\"" << list << "\"";
    EXPECT_EQ(dsns.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(dsns.status().message(), "empty"))
        << dsns.status();
  }
}

TEST(ParseDsnListTest, StrayCommaIsNamed) {
  struct Case {
    const char* list;
    const char* entry;
  };
  for (const Case& c : {Case{"host=a,,host=b", "entry 1"},
                        Case{"host=a,", "entry 1"},
                        Case{",host=a", "entry 0"},
                        Case{"host=a, ,host=b", "entry 1"},
                        Case{"host=a,host=b,", "entry 2"},
                        Case{",", "entry 0"}}) {
    SCOPED_TRACE(c.list);
    absl::StatusOr<std::vector<Dsn>> dsns = ParseDsnList(c.list);
    ASSERT_FALSE(dsns.ok());
    EXPECT_EQ(dsns.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(dsns.status().message(), "stray comma"))
        << dsns.status();
    EXPECT_TRUE(absl::StrContains(dsns.status().message(), c.entry))
        << dsns.status();
  }
}

TEST(ParseDsnListTest, ErrorNeverShowsPassword) {
  absl::StatusOr<std::vector<Dsn>> dsns =
      ParseDsnList("host=a password=secret,,host=b password=secret");
  ASSERT_FALSE(dsns.ok());
  EXPECT_EQ(dsns.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(absl::StrContains(dsns.status().message(), "secret"))
      << dsns.status();
}

TEST(ParseDsnListTest, SingleEntry) {
  absl::StatusOr<std::vector<Dsn>> dsns = ParseDsnList("host=a dbname=x");
  ASSERT_TRUE(dsns.ok()) << dsns.status();
  ASSERT_EQ(dsns->size(), 1u);
  EXPECT_EQ((*dsns)[0].ForConnect(), "host=a dbname=x");
}

TEST(ParseDsnListTest, ThreeEntriesTrimmedInOrder) {
  absl::StatusOr<std::vector<Dsn>> dsns = ParseDsnList(
      "  host=a port=5432 dbname=x , host=b dbname=y,\tpostgresql://c/z \n");
  ASSERT_TRUE(dsns.ok()) << dsns.status();
  ASSERT_EQ(dsns->size(), 3u);
  EXPECT_EQ((*dsns)[0].ForConnect(), "host=a port=5432 dbname=x");
  EXPECT_EQ((*dsns)[1].ForConnect(), "host=b dbname=y");
  EXPECT_EQ((*dsns)[2].ForConnect(), "postgresql://c/z");
  EXPECT_EQ((*dsns)[0].Endpoint(), "a:5432/x");
  EXPECT_EQ((*dsns)[1].Endpoint(), "b:5432/y");
  EXPECT_EQ((*dsns)[2].Endpoint(), "c/z");
}

TEST(ParseDsnListTest, MultiHostKeywordFormStaysOneShard) {
  absl::StatusOr<std::vector<Dsn>> dsns = ParseDsnList(
      "host=a,b port=5432,5433 dbname=x target_session_attrs=read-write, "
      "host=c dbname=y");
  ASSERT_TRUE(dsns.ok()) << dsns.status();
  ASSERT_EQ(dsns->size(), 2u);
  EXPECT_EQ((*dsns)[0].ForConnect(),
            "host=a,b port=5432,5433 dbname=x target_session_attrs=read-write");
  EXPECT_EQ((*dsns)[1].ForConnect(), "host=c dbname=y");
  EXPECT_EQ((*dsns)[0].Endpoint(), "a,b:5432,5433/x");
}

TEST(ParseDsnListTest, MultiHostUriStaysOneShard) {
  absl::StatusOr<std::vector<Dsn>> dsns = ParseDsnList(
      "postgresql://u:pw@a:5432,b:5433/x?target_session_attrs=read-write,"
      "postgres://c/z,host=d");
  ASSERT_TRUE(dsns.ok()) << dsns.status();
  ASSERT_EQ(dsns->size(), 3u);
  EXPECT_EQ((*dsns)[0].ForConnect(),
            "postgresql://u:pw@a:5432,b:5433/x?target_session_attrs=read-write");
  EXPECT_EQ((*dsns)[1].ForConnect(), "postgres://c/z");
  EXPECT_EQ((*dsns)[2].ForConnect(), "host=d");
  EXPECT_FALSE(absl::StrContains((*dsns)[0].Redacted(), "pw"));
}

TEST(ParseDsnListTest, CommaInQuotedValueDoesNotSeparate) {
  absl::StatusOr<std::vector<Dsn>> dsns = ParseDsnList(
      "host=a options = '-c search_path=s,statement_timeout=5',"
      "host=b password='x\\',host=q',host=c");
  ASSERT_TRUE(dsns.ok()) << dsns.status();
  ASSERT_EQ(dsns->size(), 3u);
  EXPECT_EQ((*dsns)[0].ForConnect(),
            "host=a options = '-c search_path=s,statement_timeout=5'");
  EXPECT_EQ((*dsns)[1].ForConnect(), "host=b password='x\\',host=q'");
  EXPECT_EQ((*dsns)[2].ForConnect(), "host=c");
  EXPECT_FALSE(absl::StrContains((*dsns)[1].Redacted(), "host=q"));
}

TEST(ParseDsnListTest, QuoteInsideUnquotedValueIsLiteral) {
  // libpq reads a quote only at the start of a value.
  absl::StatusOr<std::vector<Dsn>> dsns =
      ParseDsnList("host=a user=o'brien,host=b");
  ASSERT_TRUE(dsns.ok()) << dsns.status();
  ASSERT_EQ(dsns->size(), 2u);
  EXPECT_EQ((*dsns)[0].ForConnect(), "host=a user=o'brien");
}

}  // namespace
}  // namespace inventory
