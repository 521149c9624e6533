<?php
/*
 * portalops-wp.php: install and seed one WordPress site from the command line,
 * using only Debian's wordpress package (there is no WP-CLI in Debian 12).
 *
 * Managed by Ansible (role wordpress); run as the site's own user:
 *   php portalops-wp.php status  <host> [<seed.json>]  prints {"installed": bool, "seed_missing": int}
 *   php portalops-wp.php install <host> <title> <admin user> <admin email> <language> <timezone>
 *   php portalops-wp.php seed    <host> <seed.json>    prints {"created": int}
 *
 * <host> is one of the site's domains: Debian's wp-config.php loads
 * /etc/wordpress/config-<host>.php from HTTP_HOST. Exit status: 0 done,
 * 1 usage, 2 WordPress error, 3 not installed (seed).
 */

if (PHP_SAPI !== 'cli') {
    exit(1);
}
if ($argc < 3) {
    fwrite(STDERR, "usage: portalops-wp.php status|install|seed <host> ...\n");
    exit(1);
}
$command = $argv[1];
$host = strtolower($argv[2]);

$_SERVER['HTTP_HOST'] = $host;
$_SERVER['SERVER_NAME'] = $host;
$_SERVER['REQUEST_URI'] = '/';
$_SERVER['REQUEST_METHOD'] = 'GET';
$_SERVER['SERVER_PORT'] = '80';
$_SERVER['REMOTE_ADDR'] = '127.0.0.1';
// No install.php redirect from here (the wp-config sets DISABLE_WP_CRON).
define('WP_INSTALLING', true);

// WordPress reports some failures (no database connection) with an HTML page and exit
// status 0. Hold all output; if the script did not finish, turn that page into one line
// on stderr and exit 2, so Ansible sees a failure it can print.
$portalops_done = false;
ob_start();
register_shutdown_function(function () {
    global $portalops_done;
    $out = (string) ob_get_clean();
    if ($portalops_done) {
        echo $out;
        return;
    }
    $text = preg_replace('#<(head|style|script)[^>]*>.*?</\1>#si', '', $out);
    $text = trim(preg_replace('/\s+/', ' ', html_entity_decode(strip_tags((string) $text))));
    fwrite(STDERR, 'portalops-wp: WordPress stopped: ' . ($text !== '' ? $text : 'no message') . "\n");
    exit(2);
});

require '/usr/share/wordpress/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';

/** Fail with one readable line on stderr. */
function portalops_fail(string $message, int $code = 2): void
{
    global $portalops_done;
    $portalops_done = true;
    fwrite(STDERR, "portalops-wp: " . $message . "\n");
    exit($code);
}

/** Seed content: the JSON file the role renders (categories, topics, the blank category, the page, the scheduled post). */
function portalops_seed_data(string $file): array
{
    $data = json_decode((string) file_get_contents($file), true);
    if (!is_array($data) || !isset($data['topics'], $data['categories'], $data['blank_category'], $data['page'], $data['scheduled'])) {
        portalops_fail("cannot read seed data from $file", 1);
    }
    return $data;
}

/**
 * The posts and pages the seed data asks for, keyed by a stable seed key: a published post per topic and
 * language (the English one an hour younger), the post scheduled ahead, the page of links. Each one's
 * date is its offset in seconds from the moment it is created.
 */
function portalops_seed_posts(array $data): array
{
    $posts = [];
    foreach ($data['topics'] as $i => $topic) {
        foreach (['zh', 'en'] as $lang) {
            $posts[sprintf('topic-%02d-%s', $i + 1, $lang)] = [
                'type' => 'post',
                'status' => 'publish',
                'lang' => $lang,
                'title' => $topic[$lang],
                'category' => $topic['category'],
                'offset' => -(int) round($topic['age_days'] * 86400) + ($lang === 'en' ? 3600 : 0),
            ];
        }
    }
    $posts['scheduled-01'] = [
        'type' => 'post',
        'status' => 'future',
        'lang' => 'zh',
        'title' => $data['scheduled']['zh'],
        'category' => $data['scheduled']['category'],
        'offset' => (int) round($data['scheduled']['ahead_days'] * 86400),
    ];
    $posts['page-links'] = [
        'type' => 'page',
        'status' => 'publish',
        'lang' => 'zh',
        'title' => $data['page']['title'],
        'links' => $data['page']['links'],
        'offset' => 0,
    ];
    return $posts;
}

/** Whether the blank category is still to be made (found by its slug, whatever it holds now). */
function portalops_seed_blank_missing(array $data): bool
{
    return !get_term_by('slug', $data['blank_category']['slug'], 'category');
}

/** Seed keys already present (any post status), from post meta. */
function portalops_seed_present(): array
{
    global $wpdb;
    return $wpdb->get_col(
        "SELECT meta_value FROM {$wpdb->postmeta} WHERE meta_key = '_portalops_seed_key'"
    );
}

function portalops_body(array $post, string $image_html): string
{
    if (isset($post['links'])) {
        $html = '<!-- wp:paragraph --><p>' . esc_html('本页汇集本县各部门网站和常用服务的链接。') . '</p><!-- /wp:paragraph -->';
        foreach ($post['links'] as $link) {
            $html .= "\n<!-- wp:paragraph --><p><a href=\"" . esc_url($link['href']) . '">' . esc_html($link['text'])
                . '</a></p><!-- /wp:paragraph -->';
        }
        return $html;
    }
    if ($post['lang'] === 'zh') {
        $paragraphs = [
            '为切实做好相关工作，现将有关事项通知如下。各乡镇人民政府、县直各部门要高度重视，加强组织领导，明确责任分工，确保各项措施落到实处。',
            '各单位要结合实际，认真梳理本地区、本部门工作情况，及时发现和解决存在的问题，并于规定时间内将工作开展情况报送县人民政府办公室。',
            '广大群众如有意见建议，可通过政务服务热线12345或本网站“政民互动”栏目反映。',
        ];
    } else {
        $paragraphs = [
            'The County People\'s Government asks every township and county department to give this matter their full attention, assign clear responsibilities and see that each measure is carried out.',
            'Each unit should review its own work, find and solve problems promptly, and report on its progress to the General Office of the County Government by the stated deadline.',
            'Residents with comments or suggestions can call the 12345 government service hotline or write to us through the interaction section of this portal.',
        ];
    }
    $html = '<!-- wp:paragraph --><p><strong>' . esc_html($post['title']) . '</strong></p><!-- /wp:paragraph -->';
    foreach ($paragraphs as $paragraph) {
        $html .= "\n<!-- wp:paragraph --><p>" . esc_html($paragraph) . '</p><!-- /wp:paragraph -->';
    }
    return $html . $image_html;
}

/** The seed image: drawn with GD, attached once, found again by its seed key. */
function portalops_seed_image(): int
{
    global $wpdb;
    $existing = $wpdb->get_var(
        "SELECT p.ID FROM {$wpdb->posts} p JOIN {$wpdb->postmeta} m ON m.post_id = p.ID
         WHERE p.post_type = 'attachment' AND m.meta_key = '_portalops_seed_key' AND m.meta_value = 'image'"
    );
    if ($existing) {
        return (int) $existing;
    }
    require_once ABSPATH . 'wp-admin/includes/file.php';
    require_once ABSPATH . 'wp-admin/includes/media.php';
    require_once ABSPATH . 'wp-admin/includes/image.php';

    $width = 1200;
    $height = 630;
    $image = imagecreatetruecolor($width, $height);
    for ($y = 0; $y < $height; $y++) {
        $shade = imagecolorallocate($image, 160 - (int) (100 * $y / $height), 20, 30);
        imageline($image, 0, $y, $width, $y, $shade);
    }
    $gold = imagecolorallocate($image, 250, 210, 90);
    imagefilledellipse($image, 220, 315, 260, 260, $gold);
    imagestring($image, 5, 420, 280, 'County Government Portal', $gold);
    imagestring($image, 4, 420, 310, 'Public information - seed image', $gold);
    $tmp = wp_tempnam('portalops-seed.png');
    imagepng($image, $tmp);
    imagedestroy($image);

    $id = media_handle_sideload(
        ['name' => 'county-portal.png', 'tmp_name' => $tmp],
        0,
        '县政府门户网站 County Government Portal'
    );
    if (is_wp_error($id)) {
        @unlink($tmp);
        portalops_fail('cannot attach the seed image: ' . $id->get_error_message());
    }
    update_post_meta($id, '_portalops_seed_key', 'image');
    return (int) $id;
}

$seed_file = $argv[3] ?? '';

switch ($command) {
    case 'status':
        $installed = is_blog_installed();
        $missing = 0;
        if ($seed_file !== '') {
            $data = portalops_seed_data($seed_file);
            $wanted = array_keys(portalops_seed_posts($data));
            $missing = $installed
                ? count(array_diff($wanted, portalops_seed_present())) + (portalops_seed_blank_missing($data) ? 1 : 0)
                : count($wanted) + 1;
        }
        echo json_encode(['installed' => $installed, 'seed_missing' => $missing]), "\n";
        $portalops_done = true;
        exit(0);

    case 'install':
        if ($argc < 8) {
            portalops_fail('usage: install <host> <title> <admin user> <admin email> <language> <timezone>', 1);
        }
        if (is_blog_installed()) {
            echo json_encode(['installed' => true, 'changed' => false]), "\n";
            $portalops_done = true;
            exit(0);
        }
        [, , , $title, $user, $email, $language, $timezone] = $argv;
        // An empty password makes wp_install() generate a random one; it is not printed.
        $result = wp_install($title, $user, $email, true, '', '', $language);
        if (is_wp_error($result)) {
            portalops_fail('wp_install failed: ' . $result->get_error_message());
        }
        update_option('timezone_string', $timezone);
        update_option('WPLANG', $language);
        update_option('permalink_structure', '');
        update_option('blogdescription', '');
        // No sample content on a government site: wp_install_defaults() made the
        // "Hello world" post (ID 1) and the sample page (ID 2) in the fresh tables.
        wp_delete_post(1, true);
        wp_delete_post(2, true);
        echo json_encode(['installed' => true, 'changed' => true]), "\n";
        $portalops_done = true;
        exit(0);

    case 'seed':
        if ($seed_file === '') {
            portalops_fail('usage: seed <host> <seed.json>', 1);
        }
        if (!is_blog_installed()) {
            portalops_fail('the site is not installed', 3);
        }
        $data = portalops_seed_data($seed_file);
        $present = portalops_seed_present();
        $image_id = portalops_seed_image();
        $image_url = wp_get_attachment_url($image_id);
        $admins = get_users(['role' => 'administrator', 'number' => 1, 'fields' => 'ID']);
        $author = $admins ? (int) $admins[0] : 1;
        $created = 0;
        if (portalops_seed_blank_missing($data)) {
            $blank = $data['blank_category'];
            $term = wp_insert_term($blank['name'], 'category', ['slug' => $blank['slug']]);
            if (is_wp_error($term)) {
                portalops_fail('cannot create category ' . $blank['name'] . ': ' . $term->get_error_message());
            }
            $created++;
        }
        $first = true;
        foreach (portalops_seed_posts($data) as $key => $post) {
            if (in_array($key, $present, true)) {
                $first = false;
                continue;
            }
            $categories = [];
            if (isset($post['category'])) {
                $category = $data['categories'][$post['category']][$post['lang']];
                $term = term_exists($category, 'category');
                if (!$term) {
                    $term = wp_insert_term($category, 'category');
                    if (is_wp_error($term)) {
                        portalops_fail('cannot create category ' . $category . ': ' . $term->get_error_message());
                    }
                }
                $categories = [(int) $term['term_id']];
            }
            $image_html = '';
            if ($first && $post['type'] === 'post') {
                $image_html = "\n<!-- wp:image {\"id\":$image_id} --><figure class=\"wp-block-image\"><img src=\""
                    . esc_url($image_url) . "\" alt=\"County Government Portal\" class=\"wp-image-$image_id\"/></figure><!-- /wp:image -->";
            }
            $date = gmdate('Y-m-d H:i:s', time() + $post['offset']);
            $id = wp_insert_post([
                'post_type' => $post['type'],
                'post_title' => $post['title'],
                'post_content' => portalops_body($post, $image_html),
                'post_status' => $post['status'],
                'post_author' => $author,
                'post_category' => $categories,
                'post_date_gmt' => $date,
                'post_date' => get_date_from_gmt($date),
                'meta_input' => ['_portalops_seed_key' => $key],
            ], true);
            if (is_wp_error($id)) {
                portalops_fail('cannot create post ' . $key . ': ' . $id->get_error_message());
            }
            if ($image_html !== '') {
                set_post_thumbnail($id, $image_id);
                wp_update_post(['ID' => $image_id, 'post_parent' => $id]);
                $first = false;
            }
            $created++;
        }
        echo json_encode(['created' => $created]), "\n";
        $portalops_done = true;
        exit(0);

    default:
        portalops_fail("unknown command $command", 1);
}
