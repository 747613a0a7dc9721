-- Views over the tables of schema.sql, (re)created whenever flowkit opens a file for writing.

-- model_calls with every request's messages rebuilt from prompt_parts: the full prompt of any
-- call, exactly as it was sent. Requests are stored whole (zstd-compressed, see schema.sql);
-- those of files written while messages were stored as line references are rebuilt here.
CREATE OR REPLACE VIEW model_calls_full AS
WITH calls AS (
    SELECT row_number() OVER () AS flowkit_row, * FROM model_calls
), msgs AS (
    SELECT flowkit_row,
           unnest(json_extract(request, '$.messages[*]')) AS msg,
           generate_subscripts(json_extract(request, '$.messages[*]'), 1) AS mi
    FROM calls WHERE contains(request, '"content_parts":') AND json_type(request, '$.messages') = 'ARRAY'
), refs AS (
    SELECT flowkit_row, mi,
           unnest(json_extract_string(msg, '$.content_parts[*]')) AS part_id,
           generate_subscripts(json_extract_string(msg, '$.content_parts[*]'), 1) AS pi
    FROM msgs WHERE json_type(msg, '$.content_parts') = 'ARRAY'
), texts AS (
    SELECT flowkit_row, mi, string_agg(p.text, '' ORDER BY pi) AS content
    FROM refs JOIN prompt_parts p USING (part_id) GROUP BY flowkit_row, mi
), rebuilt AS (
    SELECT m.flowkit_row,
           to_json(list(CASE WHEN t.content IS NULL THEN m.msg
                             ELSE json_merge_patch(m.msg, json_object('content', t.content,
                                                                      'content_parts', NULL))
                        END ORDER BY m.mi)) AS messages
    FROM msgs m LEFT JOIN texts t USING (flowkit_row, mi) GROUP BY m.flowkit_row
)
SELECT c.* EXCLUDE (flowkit_row)
           REPLACE (CASE WHEN r.messages IS NULL THEN c.request
                         ELSE json_merge_patch(c.request, json_object('messages', r.messages))
                    END AS request)
FROM calls c LEFT JOIN rebuilt r USING (flowkit_row);
