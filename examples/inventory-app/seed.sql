-- Sample data for the inventory application, for the schema after every migration in
-- prisma/migrations: a few users, a few thousand items, audit history.
INSERT INTO users (id, email, preferences)
SELECT 'user-' || g, 'user' || g || '@mais.example',
       jsonb_build_object('theme', CASE WHEN g % 2 = 0 THEN 'dark' ELSE 'light' END)
FROM generate_series(1, 50) g;

INSERT INTO inventory_items (item_name, batch_number, quantity, expiry_date, created_by)
SELECT (ARRAY['Saline 0.9%', 'Gauze pads', 'Syringe 5ml', 'Gloves (M)', 'Paracetamol 500mg'])[1 + g % 5],
       'B' || lpad((g % 400)::text, 4, '0'), ((g * 37) % 1000) / 4.0, date '2026-01-01' + (g % 900),
       'user-' || (1 + g % 50)
FROM generate_series(1, 5000) g;

INSERT INTO audit_logs (user_id, action, entity, details)
SELECT 'user-' || (1 + g % 50), (ARRAY['create', 'update', 'dispense'])[1 + g % 3], 'inventory_item',
       jsonb_build_object('item', 1 + g % 5000, 'delta', (g % 21) - 10)
FROM generate_series(1, 20000) g;
