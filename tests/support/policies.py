"""Policy texts the tests build on: a small inline policy with the seed's rules."""

POLICY_TEXT = """
name: test policy
roles: {pupil: Pupils, staff: Staff, social_media_manager: Official accounts}
default_role: pupil
categories:
  locked_cat: {locked: true, domains: [locked.example]}
  x: {domains: [x.com, t.co, twimg.com], not_unblockable_for: all}
  instagram: {domains: [instagram.com, cdninstagram.com], not_unblockable_for: all}
  facebook: {domains: [facebook.com, fbcdn.net]}
  social: {domains: [tiktok.com, reddit.com]}
  vpn: {domains: [nordvpn.com], circumvention: true, not_unblockable_for: [pupil]}
  bank: {domains: [bank.example], sensitive: true}
calendar:
  timezone: Europe/London
  school_day: {start: "08:45", end: "15:15"}
  periods:
    - {name: morning break, kind: break, start: "10:30", end: "10:45"}
    - {name: lunch, kind: break, start: "12:00", end: "13:00"}
rules:
  - {name: x-and-instagram, roles: all, categories: [x, instagram], action: block}
  - {name: circumvention, roles: all, categories: [vpn], action: block}
  - {name: official-accounts, roles: [social_media_manager], categories: [facebook, social], action: allow}
  - {name: staff-social-media-at-break, roles: [staff], categories: [facebook, social], when: [break], action: allow}
  - {name: staff-social-media-otherwise, roles: [staff], categories: [facebook, social], action: block}
  - {name: pupils-social-media, roles: [pupil], categories: [facebook, social], action: block}
  - {name: staff-locked, roles: [staff], categories: [locked_cat], action: allow}
default: allow
circumvention:
  supervised_allowlist: [learning.example]
"""
