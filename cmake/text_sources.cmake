# text/: tokenizer.json BPE, chat templates, JSONL data sets (PCRE2 for the tokenizer regexes)
set(MOFO_TEXT_SOURCES
  src/text/utf8.c
  src/text/tokenizer.c
  src/text/unicode_classes.c
  src/text/jinja_parse.c
  src/text/jinja.c
  src/text/chat_template.c
  src/text/dataset.c
)
