/* template_builtin.c - named built-in chat templates, the fallback when a model file
 * carries no usable template and the override behind --chat-template NAME. Written
 * for chatd as Jinja sources in the style of the families' own templates; the
 * fixtures of the same families are their specification
 * (tests/unit/model/test_template.c checks them against those renderings).
 */
#include "template.h"

#include <stddef.h>
#include <string.h>

static const char builtin_chatml[] =
    "{%- for message in messages %}\n"
    "    {{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n";

static const char builtin_llama2[] =
    "{%- if messages and messages[0]['role'] == 'system' %}\n"
    "    {%- set system_text = '<<SYS>>\\n' + messages[0]['content'] | trim + '\\n<</SYS>>\\n\\n' %}\n"
    "    {%- set messages = messages[1:] %}\n"
    "{%- else %}\n"
    "    {%- set system_text = '' %}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n"
    "        {{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}\n"
    "    {%- endif %}\n"
    "    {%- if message['role'] == 'user' %}\n"
    "        {%- set prefix = system_text if loop.first else '' %}\n"
    "        {{- bos_token + '[INST] ' + prefix + message['content'] | trim + ' [/INST]' }}\n"
    "    {%- else %}\n"
    "        {{- ' ' + message['content'] | trim + ' ' + eos_token }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n";

static const char builtin_llama3[] =
    "{{- bos_token }}\n"
    "{%- for message in messages %}\n"
    "    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}\n"
    "    {{- message['content'] | trim + '<|eot_id|>' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
    "{%- endif %}\n";

/* Mistral's [INST] layout: the system text goes in front of the last user turn,
 * roles must alternate, and assistant turns end with eos. */
static const char builtin_mistral[] =
    "{%- if messages and messages[0]['role'] == 'system' %}\n"
    "    {%- set system_message = messages[0]['content'] %}\n"
    "    {%- set loop_messages = messages[1:] %}\n"
    "{%- else %}\n"
    "    {%- set loop_messages = messages %}\n"
    "{%- endif %}\n"
    "{%- set ns = namespace(turn=0) %}\n"
    "{{- bos_token }}\n"
    "{%- for message in loop_messages %}\n"
    "    {%- if message['role'] == 'user' or message['role'] == 'assistant' %}\n"
    "        {%- if (message['role'] == 'user') != (ns.turn % 2 == 0) %}\n"
    "            {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}\n"
    "        {%- endif %}\n"
    "        {%- set ns.turn = ns.turn + 1 %}\n"
    "    {%- endif %}\n"
    "    {%- if message['role'] == 'user' %}\n"
    "        {%- if loop.last and system_message is defined %}\n"
    "            {{- '[INST]' + system_message + '\\n\\n' + message['content'] + '[/INST]' }}\n"
    "        {%- else %}\n"
    "            {{- '[INST]' + message['content'] + '[/INST]' }}\n"
    "        {%- endif %}\n"
    "    {%- elif message['role'] == 'assistant' %}\n"
    "        {{- message['content'] + eos_token }}\n"
    "    {%- else %}\n"
    "        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n";

/* DeepSeek-R1 distills: system text right after bos, earlier answers keep only the
 * text after their last </think>, and the generation prompt opens a thought. */
static const char builtin_deepseek_r1[] =
    "{%- set ns = namespace(system_prompt='') %}\n"
    "{%- for message in messages %}\n"
    "    {%- if message['role'] == 'system' %}\n"
    "        {%- set ns.system_prompt = message['content'] %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{{- bos_token + ns.system_prompt }}\n"
    "{%- for message in messages %}\n"
    "    {%- if message['role'] == 'user' %}\n"
    "        {{- '<\xef\xbd\x9cUser\xef\xbd\x9c>' + message['content'] }}\n"
    "    {%- elif message['role'] == 'assistant' %}\n"
    "        {%- set content = message['content'] %}\n"
    "        {%- if '</think>' in content %}\n"
    "            {%- set content = content.split('</think>')[-1] %}\n"
    "        {%- endif %}\n"
    "        {{- '<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>' + content + '<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>' }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<\xef\xbd\x9c" "Assistant\xef\xbd\x9c><think>\\n' }}\n"
    "{%- endif %}\n";

static const struct {
    const char *name;
    const char *src;
} builtins[] = {
    {"chatml", builtin_chatml},
    {"llama2", builtin_llama2},
    {"llama3", builtin_llama3},
    {"mistral", builtin_mistral},
    {"deepseek-r1", builtin_deepseek_r1},
};

const char *tmpl_builtin(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
        if (strcmp(builtins[i].name, name) == 0)
            return builtins[i].src;
    return NULL;
}

const char *const *tmpl_builtin_names(void)
{
    static const char *const names[] = {"chatml", "llama2", "llama3", "mistral", "deepseek-r1", NULL};
    return names;
}
