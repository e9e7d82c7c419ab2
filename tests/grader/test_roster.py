"""Rosters read as the LMSs write them, and submissions matched to them in a fixed order."""

from __future__ import annotations

from lms_files import CANVAS_GRADEBOOK, GRADESCOPE_ROSTER, MOODLE_WORKSHEET

from grader.roster import (
    Person,
    RosterIndex,
    Submitter,
    match_submissions,
    name_keys,
    read_roster_file,
)


def test_a_canvas_gradebook_export_reads_as_it_is():
    roster = read_roster_file(CANVAS_GRADEBOOK.encode("utf-8"), name="canvas.csv")
    assert roster.lms == "canvas" and roster.columns == {"Lab 1": "4411", "Homework 2": "4412"}
    assert [p.canvas_id for p in roster.people] == ["12345", "12346", "12347", "12348", "12399"]
    alice = roster.people[0]
    assert (alice.student, alice.name, alice.sis_id, alice.login_id, alice.section) == (
        "asmith", "Smith, Alice", "S001", "asmith", "ECE661-001"
    )  # fmt: skip
    ta = read_roster_file(b'Student,ID,Section\n"Smith, Alice",12345,L01\n')  # a TA's export
    assert (ta.lms, ta.people[0].canvas_id, ta.people[0].name) == ("canvas", "12345",
                                                                   "Smith, Alice")  # fmt: skip
    plain = read_roster_file(b"student,id,name\nalice,U77,Alice\n")
    assert plain.people[0].canvas_id == "" and plain.lms == ""  # a bare "ID" is not Canvas's


def test_moodle_and_gradescope_exports_read_as_they_are():
    worksheet = read_roster_file(MOODLE_WORKSHEET.encode())
    ada = worksheet.people[0]
    assert worksheet.lms == "moodle" and (ada.moodle_id, ada.name, ada.email) == (
        "1938475", "Ada Lovelace", "ada@uni.edu"
    )  # fmt: skip
    names = read_roster_file(b"Username,Email address\nAda Lovelace,ada@uni.edu\n")
    assert (names.people[0].name, names.people[0].login_id) == ("Ada Lovelace", "")
    logins = read_roster_file(b"Username,Email address\nalovelace,ada@uni.edu\n")
    assert logins.people[0].login_id == "alovelace"
    gradescope = read_roster_file(GRADESCOPE_ROSTER.encode("utf-8-sig"))
    marie = gradescope.people[0]
    assert gradescope.lms == "gradescope"
    assert (marie.sis_id, marie.email, marie.given_and_family) == ("2001", "marie@uni.edu",
                                                                   ("Marie", "Curie"))  # fmt: skip


def test_names_compare_across_lms_spellings():
    assert name_keys("Smith, Alice") & name_keys("Alice Smith") & name_keys("smithalice")
    assert name_keys("van Dyke, Mary Ann") & name_keys("Mary Ann van Dyke")
    assert not name_keys("Alice Smith") & name_keys("Alice Smithson")


PEOPLE = [
    Person("asmith", name="Smith, Alice", sis_id="S1", login_id="asmith", email="a@u.edu",
           canvas_id="101"),
    Person("bjones", name="Jones, Bob", sis_id="S2", login_id="bjones", email="b@u.edu",
           canvas_id="102"),
    Person("clee1", name="Lee, Chris", sis_id="S3", email="c1@u.edu"),
    Person("clee2", name="Lee, Chris", sis_id="S4", email="c2@u.edu"),
]  # fmt: skip


def test_the_match_order_is_lms_id_sis_login_email_then_name():
    index = RosterIndex(PEOPLE)
    # the Canvas user id wins over a name that says someone else
    assert index.find(Submitter(name="jonesbob", lms="canvas", lms_id="101")) == (
        PEOPLE[0], "LMS user id"
    )  # fmt: skip
    assert index.find(Submitter(name="x", sis_id="S2")) == (PEOPLE[1], "SIS id")
    assert index.find(Submitter(login_id="ASMITH")) == (PEOPLE[0], "login id")
    assert index.find(Submitter(email="B@U.EDU")) == (PEOPLE[1], "email")
    assert index.find(Submitter(folder="S3")) == (PEOPLE[2], "student id")
    assert index.find(Submitter(name="Alice Smith")) == (PEOPLE[0], "name")
    person, why = index.find(Submitter(name="Chris Lee"))
    assert person is None and why == "its name fits 2 roster students (clee1, clee2)"
    assert index.find(Submitter(lms="moodle", lms_id="101"))[0] is None  # another LMS's id


def test_every_unmatched_submission_and_missing_student_is_listed():
    match = match_submissions(
        [
            ("smithalice", [Submitter(name="smithalice", lms="canvas", lms_id="101")]),
            ("alice-again", [Submitter(folder="alice-again", name="Alice Smith")]),
            (
                "pair",
                [
                    Submitter(name="Jones, Bob", email="b@u.edu"),
                    Submitter(name="Chris Lee", email="c1@u.edu"),
                    Submitter(name="Dana Kim", email="d@else.edu"),
                ],
            ),
            ("stranger", [Submitter(name="Nobody", lms="canvas", lms_id="999")]),
        ],
        PEOPLE,
    )
    assert [p.student for p, _ in match.matched["pair"]] == ["bjones", "clee1"]
    assert [u.submission for u in match.unmatched] == ["alice-again", "stranger"]
    assert match.unmatched[0].reason == (
        "roster student asmith is already matched to smithalice (by LMS user id)"
    )
    assert [p.student for p in match.missing] == ["clee2"]
    assert match.strays == [
        "Dana Kim, d@else.edu of pair: nobody on the roster has its ids or its name"
    ]
    assert match.messages()[1].startswith(
        "no roster student for submission stranger (Nobody, Canvas user id 999)"
    )
    assert match.summary() == (
        "2 of 4 submissions matched (1 by LMS user id, 2 by email); 2 unmatched; 1 roster "
        "students without a submission"
    )
    assert match_submissions([("x", [])], None).people is None
