//! Hostile templates against their benign twins, and the templates of popular models.

use super::*;

fn worst(source: &str) -> Verdict {
    judge(source).iter().map(|f| f.severity).max().unwrap_or(Verdict::Safe)
}

fn subjects(source: &str) -> Vec<String> {
    judge(source).into_iter().map(|f| f.subject).collect()
}

/// ChatML (Qwen2.5 with tools, as on the Hugging Face hub).
pub(crate) const QWEN25: &str = r#"{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"#;

/// Llama 3.
pub(crate) const LLAMA3: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

/// Llama 3.1 (tools, dates, raise_exception).
const LLAMA31: &str = r#"{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\n\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- if tools_in_user_message and not tools is none %}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
    {%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}
{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
            {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
"#;

/// Llama 2 / Mistral Instruct v0.1.
const LLAMA2: &str = "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

/// Gemma.
const GEMMA: &str = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";

/// DeepSeek-R1 (namespace for loop state, split, slicing).
const DEEPSEEK_R1: &str = r#"{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}{% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}{%- else %}{% set ns.system_prompt = ns.system_prompt + '\n\n' + message['content'] %}{%- endif %}{%- endif %}{%- endfor %}{{ bos_token }}{{ ns.system_prompt }}{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}{%- if message['role'] == 'assistant' and 'tool_calls' in message %}{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls'] %}{%- if not ns.is_first %}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}{%- set ns.is_first = true -%}{%- endif %}{%- endfor %}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- if message['role'] == 'assistant' and 'tool_calls' not in message %}{% set content = message['content'] %}{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor -%}{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\n'}}{% endif %}"#;

/// A template using loop controls, macros, cycler and joiner the ordinary way.
const ORDINARY_HELPERS: &str = "{% macro render(m) %}{{ m.role | upper }}: {{ m.content }}{% endmacro %}{% set row = cycler('odd', 'even') %}{% set sep = joiner(', ') %}{% for m in messages %}{% if m.role == 'tool' %}{% continue %}{% endif %}{{ sep() }}{{ row.next() }} {{ render(m) }}{% if loop.index > 50 %}{% break %}{% endif %}{% endfor %}{{ messages | map(attribute='role') | join(',') }}{{ messages | selectattr('role', 'equalto', 'user') | list | length }}";

#[test]
fn templates_of_popular_models_are_safe() {
    for (name, t) in [
        ("qwen2.5", QWEN25),
        ("llama3", LLAMA3),
        ("llama3.1", LLAMA31),
        ("llama2", LLAMA2),
        ("gemma", GEMMA),
        ("deepseek-r1", DEEPSEEK_R1),
        ("helpers", ORDINARY_HELPERS),
    ] {
        assert_eq!(judge(t), vec![], "{name}");
    }
}

/// The CVE-2024-34359 proof of concept (llama-cpp-python GHSA-56xg-wfcc-g829).
pub(crate) const CVE_2024_34359: &str = "{% for x in ().__class__.__base__.__subclasses__() %}{% if \"warning\" in x.__name__ %}{{x()._module.__builtins__['__import__']('os').popen(\"touch /tmp/retr0reg\")}}{%endif%}{% endfor %}";

#[test]
fn hugging_face_generation_tags_are_skipped_not_trusted() {
    let t =
        "{%- for m in messages %}{%- if m.role == 'assistant' %}{% generation %}{{ m.content }}{%- endgeneration -%}\
             {%- endif %}{%- endfor %}";
    assert_eq!(judge(t), vec![]);
    let hostile = "{% generation %}{{ m.__class__ }}{% endgeneration %}";
    assert_eq!(subjects(hostile), vec!["m.__class__".to_string()]);
}

#[test]
fn the_cve_proof_of_concept_is_dangerous() {
    assert_eq!(worst(CVE_2024_34359), Verdict::Dangerous);
    // One finding per chain, naming what it reads in order.
    let f = judge(CVE_2024_34359);
    let chain = f.iter().find(|f| f.subject == "().__class__.__base__.__subclasses__");
    assert_eq!(
        chain.map(|f| f.detail.split(':').next().unwrap_or_default()),
        Some(r#"reads "__class__", "__base__", "__subclasses__""#),
        "{f:#?}"
    );
    let popen = f.iter().find(|f| f.subject == "x()._module.__builtins__['__import__']('os').popen");
    assert!(
        popen.is_some_and(|f| f.detail.starts_with(r#"reads "_module", "__builtins__", "__import__", "popen""#)),
        "{f:#?}"
    );
    assert!(f.iter().any(|f| f.subject == "x.__name__"), "{f:#?}");
    assert!(!f.iter().any(|f| f.subject == "().__class__"), "prefixes are merged into their chain: {f:#?}");
}

#[test]
fn each_hostile_shape_is_flagged_and_its_twin_is_not() {
    // (hostile, benign twin)
    let pairs = [
        ("{{ cycler.__init__.__globals__.os.popen('id').read() }}", "{% set c = cycler('a', 'b') %}{{ c.next() }}"),
        ("{{ namespace.__init__.__globals__ }}", "{% set ns = namespace(found=false) %}{{ ns.found }}"),
        ("{{ joiner.__init__ }}", "{% set j = joiner('|') %}{{ j() }}"),
        ("{{ lipsum.__globals__['os'] }}", "{{ messages[0]['content'] }}"),
        ("{{ self._TemplateReference__context }}", "{{ message.content }}"),
        ("{{ request.application }}", "{{ message.application }}"),
        ("{{ config.items() }}", "{{ settings.items() }}"),
        ("{{ x['__class__'] }}", "{{ x['class'] }}"),
        ("{{ x['__cla' ~ 'ss__'] }}", "{{ x['cla' ~ 'ss'] }}"),
        ("{{ x['__cla' + 'ss__'] }}", "{{ x['cla' + 'ss'] }}"),
        ("{{ x[['__', 'class', '__'] | join] }}", "{{ x[['a', 'b'] | join] }}"),
        ("{{ x['%sclass%s' | format('__', '__')] }}", "{{ x['%sname' | format('first_')] }}"),
        ("{{ x['%sclass%s' % ('__', '__')] }}", "{{ x['%s' % 'name'] }}"),
        ("{{ x['__ssalc__' | reverse] }}", "{{ x['eman' | reverse] }}"),
        ("{{ x['__ssalc__'[::-1]] }}", "{{ x['eman'[::-1]] }}"),
        ("{{ x['__CLASS__' | lower] }}", "{{ x['NAME' | lower] }}"),
        ("{{ x['__CLASS__'.lower()] }}", "{{ x['NAME'.lower()] }}"),
        ("{{ x[''.join(['__', 'globals', '__'])] }}", "{{ x[''.join(['na', 'me'])] }}"),
        ("{% set a = '__cla' ~ 'ss__' %}{{ x[a] }}", "{% set a = 'cla' ~ 'ss' %}{{ x[a] }}"),
        ("{{ x | attr('__class__') }}", "{{ x | attr('content') }}"),
        ("{{ x | attr('_' * 2 ~ 'class' ~ '_' * 2) | list }}", "{{ x | attr('content') | list }}"),
        ("{{ messages | map(attribute='__class__') | list }}", "{{ messages | map(attribute='role') | list }}"),
        (
            "{{ messages | map(attribute='content.__class__') | list }}",
            "{{ messages | map(attribute='content.text') | list }}",
        ),
        ("{{ messages | selectattr('__class__') | list }}", "{{ messages | selectattr('content') | list }}"),
        ("{{ x.mro() }}", "{{ x.items() }}"),
        ("{{ x.popen('id') }}", "{{ x.open }}"),
        ("{{ os.system('id') }}", "{{ oss.system }}"),
        ("{{ __import__('os') }}", "{{ import_('os') }}"),
        ("{{ eval('1') }}", "{{ evaluate('1') }}"),
        ("{% include 'x.j2' %}", "{{ 'x.j2' }}"),
        ("{% import 'x.j2' as x %}", "{{ x }}"),
        ("{% from 'x.j2' import y %}", "{{ y }}"),
        ("{% extends 'base.j2' %}", "{{ 'base.j2' }}"),
        ("{% macro m() %}{{ x.__class__ }}{% endmacro %}", "{% macro m() %}{{ x.content }}{% endmacro %}"),
        ("{% for a in b if a.__class__ %}{% endfor %}", "{% for a in b if a.content %}{% endfor %}"),
        ("{% filter upper %}{{ x.__class__ }}{% endfilter %}", "{% filter upper %}{{ x.content }}{% endfilter %}"),
        ("{% set y %}{{ x.__dict__ }}{% endset %}", "{% set y %}{{ x.content }}{% endset %}"),
        ("{% with y = x.__class__ %}{% endwith %}", "{% with y = x.content %}{% endwith %}"),
        ("{{ x | attr(name) }}", "{{ x | attr('role') }}"),
        ("{{ '__globals__' }}", "{{ 'globals' }}"),
        ("{{ g.name }}", "{% for g in groups %}{{ g.name }}{% endfor %}"),
        ("{{ os.name }}", "{% for os, arch in targets %}{{ os.name }}{% endfor %}"),
        ("{{ config.items() }}", "{% macro show(config) %}{{ config.items() }}{% endmacro %}"),
        ("{{ session.user }}", "{% set session = namespace(user='') %}{{ session.user }}"),
        ("{{ self.x }}", "{% with self_ = messages %}{{ self_.x }}{% endwith %}"),
        ("{{ lipsum[name] }}", "{{ messages[name] }}"),
    ];
    for (hostile, benign) in pairs {
        assert_ne!(worst(hostile), Verdict::Safe, "{hostile}");
        assert_eq!(judge(benign), vec![], "{benign}");
        assert!(judge(hostile).iter().all(|f| f.kind == "template_injection"), "{hostile}");
    }
    assert_eq!(worst("{{ x | attr(name) }}"), Verdict::Suspicious);
    assert_eq!(worst("{{ '__globals__' }}"), Verdict::Suspicious);
    assert_eq!(worst("{% include 'x.j2' %}"), Verdict::Suspicious);
    assert_eq!(worst("{{ x['__cla' ~ 'ss__'] }}"), Verdict::Dangerous);
}

#[test]
fn unparsable_and_oversized_templates_are_suspicious() {
    for bad in ["{% for %}", "{{ x", "{% if a %}", "{% generation %}{% endfor %}"] {
        let f = judge(bad);
        assert_eq!(f.len(), 1, "{bad}: {f:?}");
        assert_eq!(f.first().map(|f| (f.kind, f.severity)), Some(("malformed", Verdict::Suspicious)), "{bad}");
    }
    let huge = "a".repeat(MAX_TEMPLATE_BYTES + 1);
    assert_eq!(judge(&huge).first().map(|f| f.kind), Some("bound_exceeded"));
    // A long concatenation chain: refused before a deep tree is built.
    let chain = format!("{{{{ {} }}}}", vec!["a"; MAX_BLOCK_TOKENS].join(" ~ "));
    assert_eq!(judge(&chain).first().map(|f| f.kind), Some("bound_exceeded"));
    // Just under the token bound, but deeper than MAX_DEPTH.
    let chain = format!("{{{{ {} }}}}", vec!["a"; MAX_DEPTH + 10].join(" ~ "));
    assert_eq!(judge(&chain).first().map(|f| f.kind), Some("bound_exceeded"));
    let ok = format!("{{{{ {} }}}}", vec!["a"; 100].join(" ~ "));
    assert_eq!(judge(&ok), vec![]);
}

#[test]
fn subjects_are_the_expression_text_cut_to_a_bound() {
    let long = format!("{{{{ x.{}.__class__ }}}}", "a".repeat(400));
    let s = subjects(&long);
    assert!(s.iter().all(|s| s.chars().count() <= MAX_SUBJECT + 1), "{s:?}");
    assert_eq!(subjects("{{ y.__class__ }}"), vec!["y.__class__".to_string()]);
}

proptest::proptest! {
    #[test]
    fn any_text_is_judged_without_panicking(text in "\\PC{0,400}") {
        let _ = judge(&text);
    }

    #[test]
    fn jinja_shaped_text_is_judged_without_panicking(
        parts in proptest::collection::vec(
            proptest::sample::select(vec![
                "{{", "}}", "{%", "%}", "x", ".", "__class__", "[", "]", "'a'", "~", "|", "attr", "(", ")",
                "set", "=", "for", "in", "endfor", "if", "endif", "::-1", ",", "join", "namespace", " ",
            ]),
            0..80,
        )
    ) {
        let _ = judge(&parts.concat());
    }
}

#[test]
fn deep_nesting_of_every_kind_is_bounded_on_a_small_stack() {
    let n = MAX_BLOCK_TOKENS - 2;
    let shapes = [
        format!("{{{{ {}x }}}}", "not ".repeat(n)),
        format!("{{{{ {}x }}}}", "- ".repeat(n)),
        format!("{{{{ {}x{} }}}}", "(".repeat(n / 2), ")".repeat(n / 2)),
        format!("{{{{ {}x{} }}}}", "[".repeat(n / 2), "]".repeat(n / 2)),
        format!("{{{{ x{} }}}}", "|f".repeat(n / 2)),
        format!("{{{{ x{} }}}}", ".a".repeat(n / 2)),
        format!("{{{{ x{} }}}}", "()".repeat(n / 2)),
        format!("{{{{ x{} }}}}", "[0]".repeat(n / 3)),
        format!("{{{{ {} }}}}", vec!["a"; n / 2].join(" ~ ")),
        format!("{{{{ {} }}}}", vec!["a"; n / 2].join(" if b else ")),
        format!("{}{}", "{% if a %}".repeat(400), "{% endif %}".repeat(400)),
        format!("{}{}", "{% for a in b %}".repeat(400), "{% endfor %}".repeat(400)),
        format!("{{{{ x[{}'__class__'{}] }}}}", "(".repeat(100), ")".repeat(100)),
    ];
    let handle = std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(move || shapes.iter().map(|s| worst(s)).collect::<Vec<_>>())
        .unwrap();
    let verdicts = handle.join().expect("the analysis must not overflow a 1 MiB stack");
    assert!(verdicts.iter().all(|v| *v != Verdict::Unknown), "{verdicts:?}");
}
